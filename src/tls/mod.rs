//! TLS termination: certificate pairs read and checked ([`load`]), the SNI maps of a
//! config ([`compile`]), the certificate store every TLS listener's rustls resolver reads
//! and that reloads and ACME write ([`store`]), each listener's rustls config
//! ([`listener`]), and automatic certificates ([`acme`]).

pub mod acme;
pub mod compile;
pub mod listener;
pub mod load;
pub mod store;
pub mod upstream;

pub use compile::sni_tables;
pub use load::{LoadedCert, load_pair};
pub use store::{CertBundle, CertStore, SniMap, SniTables};
