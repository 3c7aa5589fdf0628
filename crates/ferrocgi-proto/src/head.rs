//! The response head every protocol sends before the body, and its CGI encoding.
//!
//! FastCGI and SCGI responses are CGI responses (RFC 3875 §6): a `Status:` header carrying the
//! status code and reason phrase, the other headers, an empty line, then the body. AJP13 has
//! its own binary SEND_HEADERS packet, built from the same [`ResponseHead`] by the `ajp13`
//! module.

use bytes::{BufMut, Bytes, BytesMut};

/// The standard reason phrase for `status` (RFC 9110 §15 and the IANA status registry), or
/// `""` for a code without one: an application that gives only a number (ASGI) still gets a
/// full status line from front ends that copy it.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// A response status and its headers, as the application produced them.
///
/// Header names and values are raw bytes; validating them (no CR/LF, no hop-by-hop headers) is
/// the application host's job, done before a head is built. Encoders never panic on odd bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The reason phrase, e.g. `OK` (may be empty).
    pub reason: Bytes,
    /// Headers in the order they are to be sent.
    pub headers: Vec<(Bytes, Bytes)>,
}

impl ResponseHead {
    /// A head with a status, a reason phrase and no headers.
    pub fn new(status: u16, reason: impl Into<Bytes>) -> Self {
        ResponseHead {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// Appends a header.
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Number of bytes [`ResponseHead::encode_cgi`] writes.
    pub fn cgi_len(&self) -> usize {
        // "Status: " + 3 digits + " " + reason + CRLF, each header "n: v" CRLF, final CRLF.
        8 + 3
            + 1
            + self.reason.len()
            + 2
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + 2 + v.len() + 2)
                .sum::<usize>()
            + 2
    }

    /// Writes the CGI form: `Status: 200 OK\r\n`, each `Name: value\r\n`, then `\r\n`.
    ///
    /// A status outside 100..=999 is written as 500: the field is three digits by definition and
    /// the front end would otherwise reject the whole response.
    pub fn encode_cgi(&self, out: &mut BytesMut) {
        out.reserve(self.cgi_len());
        let status = if (100..=999).contains(&self.status) {
            self.status
        } else {
            500
        };
        out.put_slice(b"Status: ");
        out.put_slice(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ]);
        if !self.reason.is_empty() {
            out.put_u8(b' ');
            out.put_slice(&self.reason);
        }
        out.put_slice(b"\r\n");
        for (n, v) in &self.headers {
            out.put_slice(n);
            out.put_slice(b": ");
            out.put_slice(v);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_encoding() {
        let h = ResponseHead::new(404, "Custom")
            .header("Content-Type", "text/plain")
            .header("X-A", "1");
        let mut out = BytesMut::new();
        h.encode_cgi(&mut out);
        assert_eq!(
            &out[..],
            b"Status: 404 Custom\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\n"
        );
        assert!(out.len() <= h.cgi_len());
        assert_eq!(h.get("content-type").unwrap(), "text/plain");
    }

    #[test]
    fn out_of_range_status_becomes_500() {
        let mut out = BytesMut::new();
        ResponseHead::new(42, "").encode_cgi(&mut out);
        assert_eq!(&out[..], b"Status: 500\r\n\r\n");
    }
}
