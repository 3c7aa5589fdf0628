//! [`Protocol`]: which gateway protocol a connection speaks.

use std::fmt;

/// Which gateway protocol a request arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// FastCGI 1.0.
    Fastcgi,
    /// SCGI.
    Scgi,
    /// AJP 1.3.
    Ajp13,
    /// Plain CGI: one request from the environment and stdin (a `.fcgi` script run by mod_cgi
    /// or from a shell).
    Cgi,
}

impl Protocol {
    /// Short lowercase name used in logs and options (`fcgi`, `scgi`, `ajp`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Fastcgi => "fcgi",
            Protocol::Scgi => "scgi",
            Protocol::Ajp13 => "ajp",
            Protocol::Cgi => "cgi",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
