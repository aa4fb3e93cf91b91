//! Flash messages: a fixed code set in a cookie by a redirect, shown once as
//! words by the next page. Every code the UI uses is worded here.

use custos_domain::Entity;

/// The cookie that carries a flash message code across one redirect. It holds a
/// fixed code such as `contact.created`, never personal data.
pub const FLASH_COOKIE: &str = "__Host-custos_flash";

/// A message shown once after a redirect.
#[derive(Debug, Clone)]
pub struct Flash {
    /// Success (true) or problem (false).
    pub ok: bool,
    /// The words.
    pub text: String,
}

/// The words of a flash code; unknown codes show nothing.
pub fn text(code: &str) -> Option<Flash> {
    if let Some(text) = admin_text(code) {
        return Some(Flash {
            ok: true,
            text: text.into(),
        });
    }
    if code.starts_with("privacy.") {
        return privacy_text(code);
    }
    let ok = |t: String| Some(Flash { ok: true, text: t });
    let (what, event) = code.split_once('.')?;
    if what == "error" {
        let text = match event {
            "stage" => "The deal could not be moved: choose one of the pipeline's stages.",
            _ => return None,
        };
        return Some(Flash {
            ok: false,
            text: text.into(),
        });
    }
    if what == "deal" && event == "moved" {
        return ok("Deal moved.".into());
    }
    let entity = Entity::from_name(what)?;
    let verb = match event {
        "created" => "created",
        "updated" => "saved",
        "deleted" => "deleted",
        _ => return None,
    };
    ok(format!("{} {verb}.", entity.label()))
}

/// The words of an `admin.*` flash code.
fn admin_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "admin.created" => "User created.",
        "admin.disabled" => "User disabled. Their sessions have ended.",
        "admin.enabled" => "User enabled.",
        "admin.mfa_reset" => {
            "Second factors removed: the user must enrol one again at next sign-in."
        }
        "admin.password" => "Password reset. The user's sessions have ended.",
        "admin.session_revoked" => "Session revoked.",
        "admin.token_revoked" => "API token revoked.",
        "admin.role_changed" => "Role and team changed. They apply from the user's next request.",
        "admin.role_created" => "Role created.",
        "admin.role_saved" => {
            "Role saved. Users holding it have the new permissions from their next request."
        }
        "admin.role_deleted" => "Role deleted.",
        "admin.controller_saved" => {
            "Controller details saved. The record of processing and the public privacy notice name them now."
        }
        _ => return None,
    })
}

/// The flash messages of the Privacy pages.
fn privacy_text(code: &str) -> Option<Flash> {
    let ok = |t: &str| {
        Some(Flash {
            ok: true,
            text: t.to_string(),
        })
    };
    match code {
        "privacy.verified" => ok("Identity verified."),
        "privacy.code_issued" => ok(
            "A new one-time code was issued; the old one no longer works. Send the new code to the person.",
        ),
        "privacy.matched" => ok("Request matched to the contact."),
        "privacy.extended" => ok("Due date extended. Tell the person why."),
        "privacy.rejected" => ok(
            "Request refused and closed. Write to the person with the explanation and their right to complain to a supervisory authority.",
        ),
        "privacy.fulfilled" => ok("Request fulfilled."),
        "privacy.lifted" => ok("Restriction lifted."),
        "privacy.consent" => ok("Consent recorded."),
        "privacy.purged" => ok(
            "Retention run finished. Its purge certificate is below; download it for your records or an auditor.",
        ),
        "privacy.held" => ok(
            "Legal hold placed: this person's records are kept from retention and erasure until it is lifted.",
        ),
        "privacy.policy_saved" => ok(
            "New period saved as the policy's next version and recorded in the audit ledger. The next retention run applies it; the notice, the data map and the record of processing say it now.",
        ),
        "privacy.processor_saved" => ok(
            "Processor saved. The data map and the record of processing name it now.",
        ),
        "privacy.processor_removed" => ok("Processor removed from the register."),
        "privacy.decided" => ok("Decision recorded in the audit ledger."),
        "privacy.reviewed" => ok("Review marked done. The next is due in a year."),
        "privacy.hold_lifted" => ok(
            "Legal hold lifted. The next retention run purges what is due.",
        ),
        "privacy.consent_bad" => Some(Flash {
            ok: false,
            text: "The consent could not be recorded: choose a purpose, a state and a method, and keep the evidence under 2,000 characters.".into(),
        }),
        _ => None,
    }
}
