//! The signed-in shell every page shares: sidebar navigation (only what the
//! role may use), the top bar, flash messages carried across redirects, the
//! warning banners; and the guards every form post goes through (CSRF token,
//! Origin) and the error pages.

use super::widgets::{FLASH_COOKIE, Flash, cookie_header, render};
use crate::AppState;
use crate::extract::{UiCaller, cookie};
use askama::Template;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custos_domain::policy::{self, Operation};
use custos_domain::{Entity, Role};
use custos_service::ServiceError;

/// One link of the sidebar.
#[derive(Debug, Clone)]
pub struct NavItem {
    /// Text.
    pub label: &'static str,
    /// Where it goes.
    pub href: &'static str,
    /// Whether it is the page shown.
    pub current: bool,
}

/// A group of the sidebar (CRM, Privacy, …).
#[derive(Debug, Clone)]
pub struct NavGroup {
    /// Group heading.
    pub name: &'static str,
    /// Its links.
    pub items: Vec<NavItem>,
}

/// What the layout needs on every signed-in page.
#[derive(Debug, Clone)]
pub struct Shell {
    /// Page title (also the `<title>`).
    pub title: String,
    /// The signed-in user's email.
    pub user: String,
    /// Their role, in words.
    pub role: String,
    /// The session's CSRF token for every form on the page.
    pub csrf: String,
    /// The sidebar.
    pub nav: Vec<NavGroup>,
    /// A message from the previous request.
    pub flash: Option<Flash>,
    /// System warnings.
    pub banners: Vec<String>,
}

/// Which sidebar entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The dashboard.
    Dashboard,
    /// A list, detail or form of an entity.
    Entity(Entity),
    /// The deals board.
    Board,
    /// Importing records from a file.
    Import,
    /// Global search results (no sidebar entry).
    Search,
    /// A page of the Privacy group: the href of its sidebar entry.
    Privacy(&'static str),
    /// The audit ledger (Security).
    Audit,
    /// A page of the Admin group: the href of its sidebar entry.
    Admin(&'static str),
}

/// The sidebar for a role: a link appears only if the role may read what it shows.
pub fn navigation(role: Role, section: Section) -> Vec<NavGroup> {
    let read = |e| policy::allows(role, Operation::Read, e);
    let mut crm = Vec::new();
    if read(Entity::Deal) || read(Entity::Activity) {
        crm.push(NavItem {
            label: "Dashboard",
            href: "/app",
            current: section == Section::Dashboard,
        });
    }
    for (e, label, href) in [
        (Entity::Contact, "Contacts", "/app/contacts"),
        (Entity::Company, "Companies", "/app/companies"),
        (Entity::Deal, "Deals", "/app/deals"),
    ] {
        if read(e) {
            crm.push(NavItem {
                label,
                href,
                current: section == Section::Entity(e),
            });
        }
    }
    if read(Entity::Deal) {
        crm.push(NavItem {
            label: "Deals board",
            href: "/app/deals/board",
            current: section == Section::Board,
        });
    }
    for (e, label, href) in [
        (Entity::Activity, "Activities", "/app/activities"),
        (Entity::Order, "Orders", "/app/orders"),
    ] {
        if read(e) {
            crm.push(NavItem {
                label,
                href,
                current: section == Section::Entity(e),
            });
        }
    }
    if policy::allows(role, Operation::Create, Entity::Contact) {
        crm.push(NavItem {
            label: "Import",
            href: "/app/import",
            current: section == Section::Import,
        });
    }
    let mut groups = Vec::new();
    if !crm.is_empty() {
        groups.push(NavGroup {
            name: "CRM",
            items: crm,
        });
    }
    groups.extend(privacy_nav(role, section));
    if custos_service::reads_ledger(role) {
        groups.push(NavGroup {
            name: "Security",
            items: vec![NavItem {
                label: "Audit ledger",
                href: "/app/audit",
                current: section == Section::Audit,
            }],
        });
    }
    groups.extend(admin_nav(role, section));
    groups
}

/// The Privacy group of the sidebar: the queue for those who handle requests,
/// the "New request" form for other staff who may log one, and the public
/// portal people are sent to.
fn privacy_nav(role: Role, section: Section) -> Option<NavGroup> {
    let item = |label, href| NavItem {
        label,
        href,
        current: section == Section::Privacy(href),
    };
    let mut items = Vec::new();
    if policy::allows(role, Operation::Read, Entity::Request) {
        items.push(item("Overview", "/app/privacy"));
        items.push(item("Requests", "/app/privacy/requests"));
        if matches!(role, Role::Admin | Role::PrivacyOfficer) {
            items.push(item("Retention", "/app/privacy/retention"));
        }
        if matches!(role, Role::Admin | Role::PrivacyOfficer | Role::Auditor) {
            items.push(item("Data map & processing", "/app/privacy/map"));
            items.push(item("Minimisation", "/app/privacy/minimisation"));
        }
    } else if policy::allows(role, Operation::Create, Entity::Request) {
        items.push(item("New request", "/app/privacy/requests/new"));
    }
    if items.is_empty() {
        return None;
    }
    items.push(item("Public privacy portal", "/privacy"));
    Some(NavGroup {
        name: "Privacy",
        items,
    })
}

/// The sidebar group, for administrators.
fn admin_nav(role: Role, section: Section) -> Option<NavGroup> {
    (role == Role::Admin).then(|| NavGroup {
        name: "Admin",
        items: [
            ("Users", "/app/admin/users"),
            ("Roles", "/app/admin/roles"),
            ("Sessions", "/app/admin/sessions"),
            ("API tokens", "/app/admin/tokens"),
            ("Settings", "/app/admin/settings"),
        ]
        .into_iter()
        .map(|(label, href)| NavItem {
            label,
            href,
            current: section == Section::Admin(href),
        })
        .collect(),
    })
}

/// A fresh idempotency key for a form that creates something: the id the
/// new record will have. Sent twice (a reload, Back then Send again), the
/// form finds its record made and creates nothing more.
pub fn new_form_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The idempotency key a create form came back with, if it is one Custos
/// could have made for it: a version-7 id from the last day (its time is in
/// it). Anything else gets no replay protection, only a new id, so a crafted
/// key cannot name an old record.
pub fn posted_form_id(form: &[(String, String)], now: time::OffsetDateTime) -> Option<uuid::Uuid> {
    let raw = form.iter().find(|(k, _)| k == "form_id")?.1.trim();
    let id = uuid::Uuid::parse_str(raw).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, _) = id.get_timestamp()?.to_unix();
    let made = i64::try_from(secs).ok()?;
    let now = now.unix_timestamp();
    (now - 86_400..=now + 300).contains(&made).then_some(id)
}

/// A redirect that leaves a flash message for the next page (POST → redirect → GET).
pub fn redirect_with_flash(to: &str, code: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(FLASH_COOKIE, code, Some(60)),
    );
    r
}

/// A signed-in request to a page: who, the flash message left for them, and
/// the request headers (for the Origin check of posts).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The signed-in user and their CSRF token.
    pub caller: UiCaller,
    /// The flash code found on the request, if any.
    pub flash: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request's URI (its authority stands in for Host over HTTP/2).
    pub uri: axum::http::Uri,
}

impl<S> FromRequestParts<S> for Ctx
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = crate::extract::SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = UiCaller::from_request_parts(parts, state).await?;
        let flash = cookie(&parts.headers, FLASH_COOKIE).filter(|c| {
            !c.is_empty()
                && c.len() <= 40
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
        });
        Ok(Ctx {
            caller,
            flash,
            headers: parts.headers.clone(),
            uri: parts.uri.clone(),
        })
    }
}

impl Ctx {
    /// The role of the signed-in user.
    pub fn role(&self) -> Role {
        self.caller.principal.role
    }

    /// Whether the role may do `op` on `entity` (the service decides again).
    pub fn may(&self, op: Operation, entity: Entity) -> bool {
        policy::allows(self.role(), op, entity)
    }

    /// The shell of a page.
    pub async fn shell(&self, st: &AppState, title: impl Into<String>, section: Section) -> Shell {
        let user = match st.custos.me(&self.caller.principal).await {
            Ok(me) => me.email,
            Err(_) => String::new(),
        };
        let mut banners = Vec::new();
        if st.self_signed {
            banners.push(
                "This server uses a self-signed certificate. Install a real one before going live."
                    .to_string(),
            );
        }
        banners.extend(super::widgets::failed_attempts_banner(&self.headers));
        Shell {
            title: title.into(),
            user,
            role: self.caller.principal.role_label.clone(),
            csrf: self.caller.csrf.clone(),
            nav: navigation(self.role(), section),
            flash: self.flash.as_deref().and_then(super::widgets::flash::text),
            banners,
        }
    }

    /// Renders a page, clearing the flash cookie if a message was shown.
    pub fn page(&self, t: &impl Template, status: StatusCode) -> Response {
        let mut res = render(t);
        if res.status() == StatusCode::OK {
            *res.status_mut() = status;
        }
        if self.flash.is_some() {
            res.headers_mut()
                .append(header::SET_COOKIE, cookie_header(FLASH_COOKIE, "", Some(0)));
        }
        if cookie(&self.headers, super::widgets::FAILED_COOKIE).is_some() {
            res.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(super::widgets::FAILED_COOKIE, "", Some(0)),
            );
        }
        res
    }

    /// Checks a posted form: the session's CSRF token (constant time) and the
    /// Origin. Returns the 403 page when either is wrong.
    pub async fn check_form(
        &self,
        st: &AppState,
        form: &[(String, String)],
    ) -> Result<(), Response> {
        let token = form
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let ok = custos_crypto::constant_time_eq(self.caller.csrf.as_bytes(), token.as_bytes())
            && super::widgets::same_origin(&self.headers, &self.uri);
        if ok {
            Ok(())
        } else {
            Err(self
                .message(
                    st,
                    StatusCode::FORBIDDEN,
                    "This form expired",
                    "The form was not sent from this session, so nothing was changed. Go back, reload the page and try again.",
                )
                .await)
        }
    }

    /// A page that explains a problem (403, 404, 409, …).
    pub async fn message(
        &self,
        st: &AppState,
        status: StatusCode,
        title: &str,
        text: &str,
    ) -> Response {
        let page = MessagePage {
            shell: self.shell(st, title, Section::Search).await,
            text: text.to_string(),
            back: None,
        };
        self.page(&page, status)
    }

    /// The page for a service error that a page cannot recover from.
    pub async fn error(&self, st: &AppState, e: ServiceError) -> Response {
        match e {
            ServiceError::Unauthenticated => Redirect::to("/").into_response(),
            ServiceError::StepUpRequired => {
                let text = format!(
                    "{}. Confirm your identity under Security (step-up), then try again.",
                    custos_service::STEP_UP_REQUIRED
                );
                self.message(st, StatusCode::FORBIDDEN, "Confirm your identity", &text)
                    .await
            }
            ServiceError::EnrolmentRequired => Redirect::to("/app/security").into_response(),
            ServiceError::Forbidden(why) => {
                let text = format!(
                    "Your role ({}) does not allow this: {why}. Ask an administrator if you need it.",
                    self.caller.principal.role_label.clone()
                );
                self.message(st, StatusCode::FORBIDDEN, "Not allowed", &text)
                    .await
            }
            ServiceError::NotFound(what) => {
                let text = format!("No {what} has this id. It may have been deleted.");
                self.message(st, StatusCode::NOT_FOUND, "Not found", &text)
                    .await
            }
            ServiceError::Gone(what) => {
                let text = format!(
                    "This {what} belonged to a person whose data was erased. It can no longer be read."
                );
                self.message(st, StatusCode::GONE, "Erased", &text).await
            }
            ServiceError::Conflict(why) => {
                self.message(st, StatusCode::CONFLICT, "Not possible", &why)
                    .await
            }
            ServiceError::Invalid(errors) => {
                let text = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.message(st, StatusCode::UNPROCESSABLE_ENTITY, "Not valid", &text)
                    .await
            }
            ServiceError::RateLimited => {
                self.message(
                    st,
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests",
                    "Wait a moment and try again.",
                )
                .await
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error on a page");
                self.message(
                    st,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something failed inside Custos; the operator's log has the details.",
                )
                .await
            }
        }
    }
}

/// A page with a heading and a sentence.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// The layout.
    pub shell: Shell,
    /// What happened and what to do.
    pub text: String,
    /// A link back, if useful.
    pub back: Option<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_sees_the_crm_but_auditors_see_no_sales_pages_missing() {
        for role in Role::ALL {
            let nav = navigation(role, Section::Dashboard);
            assert_eq!(nav[0].name, "CRM", "{role}");
            assert!(nav[0].items.iter().any(|i| i.href == "/app/contacts"));
            let ledger = nav
                .iter()
                .any(|g| g.items.iter().any(|i| i.href == "/app/audit"));
            assert_eq!(ledger, custos_service::reads_ledger(role), "{role}");
        }
    }

    #[test]
    fn flash_codes_become_words() {
        assert_eq!(
            crate::ui::widgets::flash::text("contact.created").map(|f| f.text),
            Some("Contact created.".to_string())
        );
        assert!(crate::ui::widgets::flash::text("nonsense").is_none());
        assert!(
            !crate::ui::widgets::flash::text("error.stage")
                .expect("known")
                .ok
        );
    }

    #[test]
    fn every_role_that_may_log_a_request_has_a_privacy_group() {
        for role in Role::ALL {
            let g = privacy_nav(role, Section::Dashboard);
            assert_eq!(
                g.is_some(),
                policy::allows(role, Operation::Create, Entity::Request),
                "{role}"
            );
            if let Some(g) = g {
                let queue = g.items.iter().any(|i| i.href == "/app/privacy/requests");
                assert_eq!(
                    queue,
                    matches!(role, Role::Admin | Role::PrivacyOfficer),
                    "{role}"
                );
            }
        }
    }
}
