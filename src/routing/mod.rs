//! Request routing: virtual servers by listen address and `server_name`, locations by
//! path, and the `app` pin.

pub mod locations;
pub mod pin;
pub mod server_names;
pub mod signed_pin;
pub mod uri;
