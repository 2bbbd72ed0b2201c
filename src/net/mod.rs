//! Addresses as nginx reads and matches them: its text rules for IP addresses
//! (`ngx_addr`), CIDR networks and lists (`cidr`), a longest-prefix table
//! (`prefix_map`), the `X-Forwarded-For` walk (`forwarded`) and `geo` (`geo`). Pure
//! functions and tables built at config time; nothing here allocates per lookup.

pub mod cidr;
pub mod forwarded;
pub mod geo;
pub mod ngx_addr;
pub mod prefix_map;
