//! The data-subject request form, shared by the staff "New request" page
//! and the public portal (which words it for the person), and the placing of
//! the service's field errors beside the fields.

use crate::ui::fields::FormField;
use custos_domain::dsar::Kind;

type Pairs = Vec<(String, String)>;

/// A request kind as the person put it (forms).
pub fn kind_choice(kind: Kind) -> &'static str {
    match kind {
        Kind::Access => "Access: a copy of the personal data held about the person",
        Kind::Portability => "Portability: the data in a machine-readable file",
        Kind::Erasure => "Erasure: delete the person's data",
        Kind::Rectification => "Rectification: correct the person's data",
        Kind::Restriction => "Restriction: stop using the data for now",
        Kind::Objection => "Objection: no more direct marketing or profiling",
        Kind::OptOutSale => "Opt-out of sale or sharing (CCPA)",
        Kind::LimitSensitive => "Limit the use of sensitive data (CPRA)",
    }
}

/// A request kind as a person chooses it (the portal).
pub fn person_kind_choice(kind: Kind) -> &'static str {
    match kind {
        Kind::Access => "Send me a copy of the personal data you hold about me",
        Kind::Portability => "Send me my data in a machine-readable file",
        Kind::Erasure => "Delete my personal data",
        Kind::Rectification => "Correct my personal data",
        Kind::Restriction => "Stop using my data for now (restriction)",
        Kind::Objection => "Stop direct marketing and profiling (objection)",
        Kind::OptOutSale => "Do not sell or share my personal information",
        Kind::LimitSensitive => "Limit the use of my sensitive personal information",
    }
}

/// A consent purpose in words.
pub fn purpose_label(purpose: &str) -> &'static str {
    match purpose {
        "marketing_email" => "Marketing emails",
        "profiling" => "Profiling",
        "sharing_partners" => "Sharing with partners",
        "sale_share" => "Sale or sharing (CCPA)",
        _ => "Other purpose",
    }
}

/// A form field with no value yet.
pub(crate) fn form_field(
    name: &'static str,
    label: &str,
    help: &'static str,
    control: &'static str,
    required: bool,
    maxlength: usize,
) -> FormField {
    FormField {
        name,
        label: label.to_string(),
        help,
        required,
        control,
        value: String::new(),
        options: Vec::new(),
        maxlength,
        error: None,
        shown_as: String::new(),
        ..Default::default()
    }
}

/// The fields of a request form (staff and portal word them differently).
pub fn request_fields(values: &Pairs, staff: bool) -> Vec<FormField> {
    let mut kind = form_field(
        "kind",
        if staff {
            "What the person asks"
        } else {
            "What do you want us to do?"
        },
        "",
        "select",
        true,
        0,
    );
    kind.options.push((String::new(), "Choose one…".into()));
    for k in Kind::ALL {
        let label = if staff {
            kind_choice(k)
        } else {
            person_kind_choice(k)
        };
        kind.options
            .push((k.as_str().to_string(), label.to_string()));
    }
    let mut regime = form_field(
        "regime",
        if staff {
            "Law it is made under"
        } else {
            "Where do you live?"
        },
        if staff {
            "Sets the legal due date: GDPR one month (extendable by two), CCPA 45 days (extendable by 45)."
        } else {
            "This decides which law applies and how long we have to answer."
        },
        "select",
        true,
        0,
    );
    regime.options = vec![
        (String::new(), "Choose one…".into()),
        (
            "gdpr".into(),
            if staff {
                "GDPR (EU and UK)"
            } else {
                "In the EU or the UK (GDPR)"
            }
            .into(),
        ),
        (
            "ccpa".into(),
            if staff {
                "CCPA (California)"
            } else {
                "In California (CCPA)"
            }
            .into(),
        ),
    ];
    let email = form_field(
        "subject_email",
        if staff {
            "The person's email"
        } else {
            "Your email address"
        },
        if staff {
            "Custos matches the request to contacts with this email and sends nothing itself."
        } else {
            "We use it to find your data and to write to you about this request."
        },
        "email",
        true,
        254,
    );
    let details = form_field(
        "details",
        if staff {
            "Details"
        } else {
            "Anything we should know (optional)"
        },
        if staff {
            "What the person said, in their words (optional)."
        } else {
            "For a correction, tell us what is wrong and what is right."
        },
        "textarea",
        false,
        10_000,
    );
    let mut out = vec![kind, regime, email, details];
    for f in &mut out {
        if let Some(v) = values
            .iter()
            .find(|(k, _)| k == f.name)
            .map(|(_, v)| v.as_str())
        {
            f.value = v.to_string();
        }
    }
    out
}

/// Puts the service's field errors next to the fields; returns the summary.
pub fn place_errors(
    fields: &mut [FormField],
    errors: &[custos_domain::FieldError],
) -> Vec<(String, String)> {
    let mut summary = Vec::new();
    for e in errors {
        let name = e.field.split('.').next().unwrap_or_default();
        let msg = &e.message;
        match fields.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                let text = format!("{} {msg}", f.label);
                f.error.get_or_insert(text.clone());
                summary.push((format!("#f-{}", f.name), text));
            }
            None => summary.push((String::new(), format!("{}: {msg}", e.field))),
        }
    }
    summary
}
