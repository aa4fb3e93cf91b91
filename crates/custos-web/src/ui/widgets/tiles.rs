//! The dashboard's tiles, filled by the dashboard and by the privacy pages.

/// One activity named on a tile.
#[derive(Debug, Clone)]
pub struct Item {
    /// What it is.
    pub text: String,
    /// When (due or logged).
    pub when: String,
    /// Extra words (overdue).
    pub note: String,
    /// Link.
    pub href: String,
}

/// One dashboard tile.
#[derive(Debug, Clone)]
pub struct Tile {
    /// Heading.
    pub heading: &'static str,
    /// Anchor id.
    pub id: &'static str,
    /// The big number.
    pub number: String,
    /// What the number counts.
    pub unit: String,
    /// The trend in words (never colour alone).
    pub trend: String,
    /// `up`, `down` or `flat`, for the trend's arrow.
    pub trend_dir: &'static str,
    /// The chart (SVG made here, escaped).
    pub chart: String,
    /// Activities named on the tile.
    pub items: Vec<Item>,
    /// The list behind the tile.
    pub href: String,
    /// That link's words.
    pub link: &'static str,
}
