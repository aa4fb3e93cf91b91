//! The data map: where personal data comes from, where it is stored and
//! under which key, what it is used for and on what basis, who receives
//! it, and how it is disposed of; drawn as an SVG from the data inventory
//! and the processor register, laid out by the `layout-rs` engine (no
//! hand-placed coordinates), with every box a link to its entry in the
//! inventory table below it, which is also the map's text alternative.

use crate::ui::fields::humanize;
use crate::ui::widgets::notice::{basis_words, purpose_words, retention_words, years_words};
use custos_domain::Entity;
use custos_domain::inventory::{self, FieldDecl, Protection, Purpose, Retention};
use custos_service::Processor;
use layout::core::base::Orientation;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::{Point, get_size_for_str, pad_shape_scalar};
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The column of the map a box belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    /// Where data comes from.
    Source,
    /// Where it is kept.
    Store,
    /// What it is used for.
    Use,
    /// How it ends.
    Disposal,
    /// Who else receives it.
    Recipient,
}

impl Column {
    fn class(self) -> &'static str {
        match self {
            Column::Source => "map-source",
            Column::Store => "map-store",
            Column::Use => "map-use",
            Column::Disposal => "map-disposal",
            Column::Recipient => "map-recipient",
        }
    }
}

/// One box of the map.
#[derive(Debug, Clone)]
pub struct MapNode {
    /// Its id (also its anchor in the table alternative).
    pub key: String,
    /// What the box says.
    pub label: String,
    /// Longer words for its title (read by screen readers and on hover).
    pub title: String,
    /// Where it links: its entry in the inventory table, or the page that
    /// keeps it (the register, the record of processing, retention).
    pub href: String,
    /// Its column.
    pub column: Column,
}

/// The map as boxes and arrows, before layout.
#[derive(Debug, Clone, Default)]
pub struct DataMap {
    /// The boxes, in order of first appearance.
    pub nodes: Vec<MapNode>,
    /// The arrows, by box key.
    pub edges: Vec<(String, String)>,
}

impl DataMap {
    fn node(&mut self, key: String, label: String, title: String, href: String, column: Column) {
        if !self.nodes.iter().any(|n| n.key == key) {
            self.nodes.push(MapNode {
                key,
                label,
                title,
                href,
                column,
            });
        }
    }

    fn edge(&mut self, from: &str, to: &str) {
        let e = (from.to_string(), to.to_string());
        if !self.edges.contains(&e) {
            self.edges.push(e);
        }
    }
}

/// The anchor of an entity's section of the inventory table.
pub fn entity_anchor(e: Entity) -> String {
    format!("inventory-{}", e.plural())
}

/// The anchor of one field's row of the inventory table.
pub fn field_anchor(f: &FieldDecl) -> String {
    format!("field-{}-{}", f.entity.name(), f.name)
}

/// The anchor of a purpose in the record of processing.
pub fn purpose_anchor(p: Purpose) -> String {
    format!("purpose-{}", p.name())
}

/// Where an entity's data comes in.
fn sources_of(e: Entity) -> &'static [(&'static str, &'static str)] {
    const STAFF: (&str, &str) = ("staff", "Staff entry in the web forms");
    const IMPORT: (&str, &str) = ("import", "CSV import");
    const API: (&str, &str) = ("api", "REST API");
    const PORTAL: (&str, &str) = ("portal", "Privacy portal (the person)");
    const INVITE: (&str, &str) = ("invitation", "Invitations by an administrator");
    match e {
        Entity::Contact | Entity::Company | Entity::Deal | Entity::Activity | Entity::Order => {
            &[STAFF, IMPORT, API]
        }
        Entity::Request => &[PORTAL, STAFF],
        Entity::Consent => &[PORTAL, STAFF, API],
        Entity::User => &[INVITE],
    }
}

fn disposal_key(r: Retention) -> String {
    match r {
        Retention::WhileRelationship => "disposal-erasure".to_string(),
        Retention::WhileAccount => "disposal-account".to_string(),
        Retention::YearsAfter {
            years,
            anchor,
            then,
        } => format!("disposal-{years}y-{anchor}-{}", then.as_str()),
        Retention::YearsAfterLastActivity { years } => {
            format!("disposal-{years}y-last-activity-erase")
        }
    }
}

fn disposal_label(r: Retention) -> String {
    match r {
        Retention::WhileRelationship => "Until erasure (key destroyed)".to_string(),
        Retention::WhileAccount => "While the staff account exists".to_string(),
        Retention::YearsAfter {
            years,
            anchor,
            then,
        } => format!(
            "{} after {}, then {}",
            years_words(years),
            humanize(anchor).to_lowercase(),
            match then {
                inventory::Disposal::Delete => "deleted",
                inventory::Disposal::Anonymise => "anonymised",
                inventory::Disposal::Erase => "erased",
            }
        ),
        Retention::YearsAfterLastActivity { years } => {
            format!(
                "{} after the last activity, then erased (key destroyed)",
                years_words(years)
            )
        }
    }
}

/// Builds the map from the inventory and the register.
pub fn build(processors: &[Processor], periods: &custos_domain::retention::Periods) -> DataMap {
    let mut m = DataMap::default();
    let backups = "store-backups".to_string();
    for entity in Entity::ALL {
        let fields: Vec<&FieldDecl> = inventory::fields(entity)
            .filter(|f| {
                f.category != inventory::DataCategory::Credentials || entity == Entity::User
            })
            .collect();
        let plural = humanize(entity.plural());
        // One box per entity's table, naming how its fields are kept and
        // under which key.
        let mut kinds: Vec<&str> = Vec::new();
        for f in &fields {
            let kind = match f.protection {
                Protection::Sealed => "sealed",
                Protection::SealedIndexed { .. } => "blind index",
                Protection::Plain { .. } => "plain",
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds.sort_by_key(|k| match *k {
            "sealed" => 0,
            "blind index" => 1,
            _ => 2,
        });
        if kinds.contains(&"blind index") && !kinds.contains(&"sealed") {
            kinds.insert(0, "sealed");
        }
        let store = format!("store-{}", entity.plural());
        let words: Vec<&str> = kinds
            .iter()
            .map(|k| match *k {
                "sealed" => "fields sealed under the person's own data key (AES-256-GCM)",
                "blind index" => "keyed blind indexes (HMAC) for exact search",
                _ => "plain columns for ids, times and states",
            })
            .collect();
        m.node(
            store.clone(),
            format!("{plural}: {}", kinds.join(", ")),
            format!("{plural}: {}", words.join("; ")),
            format!("#{}", entity_anchor(entity)),
            Column::Store,
        );
        let stores: BTreeMap<&str, String> = [("table", store)].into_iter().collect();
        for (key, words) in sources_of(entity) {
            let k = format!("source-{key}");
            m.node(
                k.clone(),
                words.to_string(),
                format!("Data comes in through: {words}"),
                "#sources".to_string(),
                Column::Source,
            );
            for store in stores.values() {
                m.edge(&k, store);
            }
        }
        for f in &fields {
            let store = format!("store-{}", entity.plural());
            for p in f.purposes {
                let k = format!("use-{}", p.name());
                let basis = basis_words(f.lawful_basis).unwrap_or("no basis needed");
                m.node(
                    k.clone(),
                    humanize(p.name()),
                    format!("Used for {}; basis: {basis}", purpose_words(*p)),
                    format!("/app/privacy/processing#{}", purpose_anchor(*p)),
                    Column::Use,
                );
                m.edge(&store, &k);
                for r in f.recipients {
                    let rk = format!("recipient-{}", r.replace(' ', "-"));
                    m.node(
                        rk.clone(),
                        humanize(r),
                        format!("Receives data for {}", purpose_words(*p)),
                        "#recipients".to_string(),
                        Column::Recipient,
                    );
                    m.edge(&k, &rk);
                }
                for x in processors {
                    if x.categories.iter().any(|c| c == f.category.name()) {
                        let xk = format!("processor-{}", x.id);
                        m.node(
                            xk.clone(),
                            x.name.clone(),
                            format!(
                                "Processor: {} ({}, {})",
                                x.service,
                                x.country,
                                x.transfer.words()
                            ),
                            format!("/app/privacy/processors#processor-{}", x.id),
                            Column::Recipient,
                        );
                        m.edge(&k, &xk);
                    }
                }
            }
            let retention = periods.retention(f);
            let dk = disposal_key(retention);
            m.node(
                dk.clone(),
                disposal_label(retention),
                format!("Disposal: {}", retention_words(retention)),
                "/app/privacy/retention".to_string(),
                Column::Disposal,
            );
            m.edge(&store, &dk);
        }
        if entity != Entity::User {
            m.node(
                backups.clone(),
                "Backups: encrypted".to_string(),
                "Backups: encrypted archives of the whole database; erasures made after a backup are applied again on restore".to_string(),
                "#backups".to_string(),
                Column::Store,
            );
            for store in stores.values() {
                m.edge(store, &backups);
            }
        }
    }
    m
}

/// Collects what the layout engine draws: the boxes (by the key passed as
/// their properties) and the arrows' paths.
#[derive(Default)]
struct Collect {
    rects: BTreeMap<String, (Point, Point)>,
    arrows: Vec<Vec<(Point, Point)>>,
    min: Option<Point>,
    max: Option<Point>,
}

impl Collect {
    fn grow(&mut self, p: Point) {
        self.min = Some(match self.min {
            Some(m) => Point::new(m.x.min(p.x), m.y.min(p.y)),
            None => p,
        });
        self.max = Some(match self.max {
            Some(m) => Point::new(m.x.max(p.x), m.y.max(p.y)),
            None => p,
        });
    }
}

impl RenderBackend for Collect {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        self.grow(xy);
        self.grow(xy.add(size));
        if let Some(key) = properties {
            self.rects.insert(key, (xy, size));
        }
    }

    fn draw_line(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_circle(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_text(&mut self, _: Point, _: &str, _: &StyleAttr) {}

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        _dashed: bool,
        _head: (bool, bool),
        _look: &StyleAttr,
        _properties: Option<String>,
        _text: &str,
    ) {
        for p in path {
            self.grow(p.0);
            self.grow(p.1);
        }
        if path.len() >= 2 {
            self.arrows.push(path.to_vec());
        }
    }

    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        0
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const FONT: usize = 14;

/// Lays the map out and draws it as an inline SVG: each box a link with
/// a title, each arrow a path. Text is the page's own font, sized by the
/// stylesheet.
pub fn svg(map: &DataMap) -> String {
    let mut g = VisualGraph::new(Orientation::LeftToRight);
    let mut handles = BTreeMap::new();
    for n in &map.nodes {
        let shape = ShapeKind::new_box(&n.label);
        // The engine sizes boxes by characters; a proportional font needs
        // about 0.6 of that.
        let text = get_size_for_str(&n.label, FONT);
        let size = pad_shape_scalar(Point::new(text.x * 0.62, text.y), 16.);
        let el = Element::create_with_properties(
            shape,
            StyleAttr::simple(),
            Orientation::LeftToRight,
            size,
            n.key.clone(),
        );
        handles.insert(n.key.clone(), g.add_node(el));
    }
    for (a, b) in &map.edges {
        if let (Some(x), Some(y)) = (handles.get(a), handles.get(b)) {
            g.add_edge(Arrow::simple(""), *x, *y);
        }
    }
    let mut c = Collect::default();
    g.do_it(false, false, false, &mut c);
    let (min, max) = match (c.min, c.max) {
        (Some(a), Some(b)) => (a, b),
        _ => (Point::zero(), Point::new(1., 1.)),
    };
    let pad = 8.;
    let (w, h) = (max.x - min.x + 2. * pad, max.y - min.y + 2. * pad);
    let (ox, oy) = (min.x - pad, min.y - pad);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="data-map" xmlns="http://www.w3.org/2000/svg" viewBox="{ox:.0} {oy:.0} {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="group" aria-labelledby="map-title map-desc"><title id="map-title">Data map</title><desc id="map-desc">Where personal data comes from, where it is kept and under which key, what it is used for, who receives it and how it is disposed of. The table below says the same in words.</desc><defs><marker id="map-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="map-arrowhead"/></marker></defs><g class="map-edges" aria-hidden="true">"##
    );
    for path in &c.arrows {
        let mut d = format!(
            "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1}",
            path[0].0.x,
            path[0].0.y,
            path[0].1.x,
            path[0].1.y,
            path[1].0.x,
            path[1].0.y,
            path[1].1.x,
            path[1].1.y
        );
        for p in path.iter().skip(2) {
            let _ = write!(d, " S {:.1} {:.1}, {:.1} {:.1}", p.0.x, p.0.y, p.1.x, p.1.y);
        }
        let _ = write!(out, r#"<path d="{d}" marker-end="url(#map-arrow)"/>"#);
    }
    out.push_str("</g>");
    for n in &map.nodes {
        let Some((xy, size)) = c.rects.get(&n.key) else {
            continue;
        };
        let _ = write!(
            out,
            r#"<a href="{href}" class="map-node {class}" id="map-{key}"><title>{title}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="6"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="middle" dominant-baseline="central">{label}</text></a>"#,
            href = esc(&n.href),
            class = n.column.class(),
            key = esc(&n.key),
            title = esc(&n.title),
            x = xy.x,
            y = xy.y,
            w = size.x,
            h = size.y,
            tx = xy.x + size.x / 2.,
            ty = xy.y + size.y / 2.,
            label = esc(&n.label),
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inventory_purpose_recipient_and_retention_rule_has_a_box() {
        let m = build(&[], &Default::default());
        for f in inventory::FIELDS {
            for p in f.purposes {
                assert!(m.nodes.iter().any(|n| n.key == format!("use-{}", p.name())));
            }
            for r in f.recipients {
                assert!(
                    m.nodes
                        .iter()
                        .any(|n| n.column == Column::Recipient && n.label == humanize(r)),
                    "{r}"
                );
            }
            assert!(m.nodes.iter().any(|n| n.key == disposal_key(f.retention)));
        }
        // Every arrow joins two boxes of the map.
        for (a, b) in &m.edges {
            assert!(m.nodes.iter().any(|n| &n.key == a));
            assert!(m.nodes.iter().any(|n| &n.key == b));
        }
    }

    #[test]
    fn the_svg_places_every_box_once_with_its_link() {
        let m = build(&[], &Default::default());
        let s = svg(&m);
        for n in &m.nodes {
            let id = format!(r#"id="map-{}""#, n.key);
            assert_eq!(s.matches(&id).count(), 1, "{}", n.key);
        }
        assert_eq!(s.matches("<a href=").count(), m.nodes.len());
        // One path per arrow, and the arrowhead's.
        assert_eq!(s.matches("<path d=\"M").count(), m.edges.len() + 1);
    }
}
