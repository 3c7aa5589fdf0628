//! AJP13 code tables: packet types, method codes, coded header names, attribute codes.
//!
//! # Background
//!
//! From the AJPv13 document (Dan Milstein, 2000, as kept by the Tomcat connectors project):
//! "the header name is encoded as 0xA0xx, where xx is the code", and "if the first byte is
//! 0xA0 the header name is coded, otherwise it is a string length". Request header codes run
//! from `0xA001` (`accept`) to `0xA00E` (`user-agent`); response header codes from `0xA001`
//! (`Content-Type`) to `0xA00B` (`WWW-Authenticate`). Method codes run from 1 (`OPTIONS`) to
//! 27 (`MKACTIVITY`, the WebDAV/DeltaV methods included); 0xFF means the method's name is
//! in the `stored_method` attribute (0x0D), which is how Apache sends any other method.
//!
//! Note: if a table changes, update `ForwardRequest::to_params` docs and the tests.

/// Magic of a packet from the web server: `0x12 0x34`.
pub const MAGIC_FROM_SERVER: [u8; 2] = [0x12, 0x34];
/// Magic of a packet from the container: `'A' 'B'`.
pub const MAGIC_FROM_CONTAINER: [u8; 2] = [b'A', b'B'];

/// Packet type: the request head (web server → container).
pub const FORWARD_REQUEST: u8 = 2;
/// Packet type: a piece of the response body (container → web server).
pub const SEND_BODY_CHUNK: u8 = 3;
/// Packet type: the response head (container → web server).
pub const SEND_HEADERS: u8 = 4;
/// Packet type: end of the response (container → web server).
pub const END_RESPONSE: u8 = 5;
/// Packet type: ask for the next request body chunk (container → web server).
pub const GET_BODY_CHUNK: u8 = 6;
/// Packet type: shut the container down (web server → container).
pub const SHUTDOWN: u8 = 7;
/// Packet type: the obsolete ping (web server → container); answered with CPONG here.
pub const PING: u8 = 8;
/// Packet type: answer to CPING (container → web server).
pub const CPONG_REPLY: u8 = 9;
/// Packet type: liveness check (web server → container), answered with CPONG.
pub const CPING: u8 = 10;

/// Method code meaning "the name is in the `stored_method` attribute".
pub const SC_M_JK_STORED: u8 = 0xFF;

/// Method names by code (index 0 unused).
const METHODS: [&str; 28] = [
    "",
    "OPTIONS",
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "ACL",
    "REPORT",
    "VERSION-CONTROL",
    "CHECKIN",
    "CHECKOUT",
    "UNCHECKOUT",
    "SEARCH",
    "MKWORKSPACE",
    "UPDATE",
    "LABEL",
    "MERGE",
    "BASELINE-CONTROL",
    "MKACTIVITY",
];

/// The method name for a code in 1..=27.
pub fn method_name(code: u8) -> Option<&'static str> {
    METHODS
        .get(usize::from(code))
        .copied()
        .filter(|m| !m.is_empty())
}

/// The code of a method name (exact, case-sensitive: methods are case-sensitive in HTTP).
pub fn method_code(name: &[u8]) -> Option<u8> {
    METHODS
        .iter()
        .position(|m| !m.is_empty() && m.as_bytes() == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// Request header names by code low byte (index 0 unused), lower case as Tomcat delivers
/// them.
const REQUEST_HEADERS: [&str; 15] = [
    "",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "connection",
    "content-type",
    "content-length",
    "cookie",
    "cookie2",
    "host",
    "pragma",
    "referer",
    "user-agent",
];

/// Response header names by code low byte (index 0 unused).
const RESPONSE_HEADERS: [&str; 12] = [
    "",
    "Content-Type",
    "Content-Language",
    "Content-Length",
    "Date",
    "Last-Modified",
    "Location",
    "Set-Cookie",
    "Set-Cookie2",
    "Servlet-Engine",
    "Status",
    "WWW-Authenticate",
];

fn lookup(table: &'static [&'static str], code: u16) -> Option<&'static str> {
    if code >> 8 != 0xA0 {
        return None;
    }
    table
        .get(usize::from(code & 0xFF))
        .copied()
        .filter(|h| !h.is_empty())
}

fn code_of(table: &'static [&'static str], name: &[u8]) -> Option<u16> {
    table
        .iter()
        .position(|h| !h.is_empty() && h.as_bytes().eq_ignore_ascii_case(name))
        .and_then(|i| u16::try_from(i).ok())
        .map(|i| 0xA000 | i)
}

/// The canonical (lower-case) request header name for a `0xA0xx` code.
pub fn request_header_name(code: u16) -> Option<&'static str> {
    lookup(&REQUEST_HEADERS, code)
}

/// The `0xA0xx` code of a request header name (ASCII case-insensitive).
pub fn request_header_code(name: &[u8]) -> Option<u16> {
    code_of(&REQUEST_HEADERS, name)
}

/// The response header name for a `0xA0xx` code.
pub fn response_header_name(code: u16) -> Option<&'static str> {
    lookup(&RESPONSE_HEADERS, code)
}

/// The `0xA0xx` code of a response header name (ASCII case-insensitive).
pub fn response_header_code(name: &[u8]) -> Option<u16> {
    code_of(&RESPONSE_HEADERS, name)
}

/// Attribute codes of FORWARD_REQUEST (after the headers, until [`attr::ARE_DONE`]).
pub mod attr {
    /// `context` (string; unused by Apache).
    pub const CONTEXT: u8 = 0x01;
    /// `servlet_path` (string; unused by Apache).
    pub const SERVLET_PATH: u8 = 0x02;
    /// `remote_user` (string).
    pub const REMOTE_USER: u8 = 0x03;
    /// `auth_type` (string).
    pub const AUTH_TYPE: u8 = 0x04;
    /// `query_string` (string, without the `?`).
    pub const QUERY_STRING: u8 = 0x05;
    /// `route` / `jvm_route` (string).
    pub const JVM_ROUTE: u8 = 0x06;
    /// `ssl_cert` (string, PEM).
    pub const SSL_CERT: u8 = 0x07;
    /// `ssl_cipher` (string).
    pub const SSL_CIPHER: u8 = 0x08;
    /// `ssl_session` (string).
    pub const SSL_SESSION: u8 = 0x09;
    /// `req_attribute` (two strings: name, value).
    pub const REQ_ATTRIBUTE: u8 = 0x0A;
    /// `ssl_key_size` (an integer: u16, as Apache's `ajp_msg_append_uint16` and Tomcat's
    /// `getInt` agree).
    pub const SSL_KEY_SIZE: u8 = 0x0B;
    /// `secret` (string).
    pub const SECRET: u8 = 0x0C;
    /// `stored_method` (string).
    pub const STORED_METHOD: u8 = 0x0D;
    /// End of the attribute list.
    pub const ARE_DONE: u8 = 0xFF;
}
