//! Page pieces more than one ui module uses: rendering and the HTTP checks
//! of forms, flash messages, warning banners, record names, dashboard tiles,
//! the privacy notice and the request form. A widget depends on no page
//! module (only on `fields`, `charts` and the crates below), so the page
//! modules depend on widgets and on nothing that depends back on them.

pub(crate) mod banners;
pub(crate) mod flash;
pub(crate) mod http;
pub(crate) mod names;
pub(crate) mod notice;
pub(crate) mod request_form;
pub(crate) mod tiles;

pub use banners::{FAILED_COOKIE, failed_attempts_banner};
pub use flash::{FLASH_COOKIE, Flash};
pub(crate) use http::{
    CSS, JS, PRE_COOKIE, cookie_header, new_pre_token, pre_form_ok, render, same_origin,
    static_file,
};
pub use names::Names;
pub use notice::{Notice, customer_notice, notice_from};
pub use request_form::{
    kind_choice, person_kind_choice, place_errors, purpose_label, request_fields,
};
pub use tiles::{Item, Tile};
