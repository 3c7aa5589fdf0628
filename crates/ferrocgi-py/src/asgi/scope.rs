//! The `http` scope of a request, from the gateway's CGI params (asgiref's HTTP connection
//! scope), with the same SCRIPT_NAME/PATH_INFO rules as the WSGI environ ([`crate::paths`]).

use crate::paths::script_and_path;
use crate::settings::HostSettings;
use ferrocgi_server::{Params, Protocol};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

/// The CGI variables the scope is made of, found in one pass over the params (the first of
/// each name wins, as for the WSGI environ), and the header params in their order.
#[derive(Default)]
struct Cgi<'a> {
    method: Option<&'a [u8]>,
    uri: Option<&'a [u8]>,
    query: Option<&'a [u8]>,
    protocol: Option<&'a [u8]>,
    https: Option<&'a [u8]>,
    scheme: Option<&'a [u8]>,
    remote_addr: Option<&'a [u8]>,
    remote_port: Option<&'a [u8]>,
    server_addr: Option<&'a [u8]>,
    server_name: Option<&'a [u8]>,
    server_port: Option<&'a [u8]>,
    headers: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Cgi<'a> {
    fn read(p: &'a Params) -> Cgi<'a> {
        let mut c = Cgi {
            headers: Vec::with_capacity(p.len()),
            ..Cgi::default()
        };
        for (name, value) in p.iter() {
            let slot = match name {
                b"REQUEST_METHOD" => &mut c.method,
                b"REQUEST_URI" => &mut c.uri,
                b"QUERY_STRING" => &mut c.query,
                b"SERVER_PROTOCOL" => &mut c.protocol,
                b"HTTPS" => &mut c.https,
                b"REQUEST_SCHEME" => &mut c.scheme,
                b"REMOTE_ADDR" => &mut c.remote_addr,
                b"REMOTE_PORT" => &mut c.remote_port,
                b"SERVER_ADDR" => &mut c.server_addr,
                b"SERVER_NAME" => &mut c.server_name,
                b"SERVER_PORT" => &mut c.server_port,
                _ => {
                    if is_header(name, value) {
                        c.headers.push((name, value));
                    }
                    continue;
                }
            };
            slot.get_or_insert(value);
        }
        c
    }

    /// `HTTP/1.1` → `1.1`; HTTP/2 and /3 are `2` and `3` as the spec spells them.
    fn http_version(&self) -> &'static str {
        match self.protocol.unwrap_or(b"HTTP/1.1") {
            b"HTTP/1.0" => "1.0",
            b"HTTP/2" | b"HTTP/2.0" => "2",
            b"HTTP/3" | b"HTTP/3.0" => "3",
            _ => "1.1",
        }
    }

    fn is_https(&self) -> bool {
        matches!(self.https, Some(v) if v.eq_ignore_ascii_case(b"on") || v == b"1")
            || self
                .scheme
                .is_some_and(|v| v.eq_ignore_ascii_case(b"https"))
    }
}

/// Whether a param is a request header: `HTTP_*` (but not the CONTENT_* copies, which the
/// front end may have corrected for a chunked body), or a non-empty CONTENT_TYPE/LENGTH
/// (nginx sends both empty when there are none).
fn is_header(name: &[u8], value: &[u8]) -> bool {
    match name {
        b"CONTENT_TYPE" | b"CONTENT_LENGTH" => !value.is_empty(),
        b"HTTP_CONTENT_TYPE" | b"HTTP_CONTENT_LENGTH" => false,
        _ => name.starts_with(b"HTTP_"),
    }
}

/// The header name a header param stands for: lower-case with dashes.
fn header_name(param: &[u8]) -> Vec<u8> {
    let rest = param.strip_prefix(b"HTTP_").unwrap_or(param);
    rest.iter()
        .map(|&c| match c {
            b'_' => b'-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn headers<'py>(py: Python<'py>, c: &Cgi<'_>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (name, value) in &c.headers {
        let pair = PyTuple::new(
            py,
            [
                PyBytes::new(py, &header_name(name)),
                PyBytes::new(py, value),
            ],
        )?;
        list.append(pair)?;
    }
    Ok(list)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `[host, port]`, when the host is known.
fn address<'py>(
    py: Python<'py>,
    host: Option<&[u8]>,
    port: Option<&[u8]>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(h) = host.filter(|h| !h.is_empty()) else {
        return Ok(py.None().into_bound(py));
    };
    let port: u16 = port
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    let pair = [
        text(h).into_pyobject(py)?.into_any(),
        port.into_pyobject(py)?.into_any(),
    ];
    Ok(PyList::new(py, pair)?.into_any())
}

/// The scope for one request: a copy of `base` (the keys every scope shares) filled in.
pub(crate) fn build<'py>(
    py: Python<'py>,
    base: &Bound<'py, PyDict>,
    s: &HostSettings,
    protocol: Protocol,
    p: &Params,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = Cgi::read(p);
    let scope = base.copy()?;
    let (sn, pi) = script_and_path(p, protocol, s.script_name.as_deref(), s.ajp_path_decoded);
    let uri = c.uri.unwrap_or(b"");
    let raw_path = uri.split(|&b| b == b'?').next().unwrap_or(b"");
    let mut path = sn.clone();
    path.extend_from_slice(&pi);
    if path.is_empty() {
        path.push(b'/');
    }
    let method = text(c.method.unwrap_or(b"GET")).to_ascii_uppercase();
    let scheme = if c.is_https() { "https" } else { "http" };
    scope.set_item(pyo3::intern!(py, "http_version"), c.http_version())?;
    scope.set_item(pyo3::intern!(py, "method"), method)?;
    scope.set_item(pyo3::intern!(py, "scheme"), scheme)?;
    scope.set_item(pyo3::intern!(py, "path"), text(&path))?;
    scope.set_item(pyo3::intern!(py, "raw_path"), PyBytes::new(py, raw_path))?;
    let query = PyBytes::new(py, c.query.unwrap_or(b""));
    scope.set_item(pyo3::intern!(py, "query_string"), query)?;
    scope.set_item(pyo3::intern!(py, "root_path"), text(&sn))?;
    scope.set_item(pyo3::intern!(py, "headers"), headers(py, &c)?)?;
    let client = address(py, c.remote_addr, c.remote_port)?;
    scope.set_item(pyo3::intern!(py, "client"), client)?;
    let server = address(py, c.server_addr.or(c.server_name), c.server_port)?;
    scope.set_item(pyo3::intern!(py, "server"), server)?;
    if let Some(state) = state {
        scope.set_item(pyo3::intern!(py, "state"), state.copy()?)?;
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_come_from_http_params() {
        assert_eq!(header_name(b"HTTP_ACCEPT_ENCODING"), b"accept-encoding");
        assert_eq!(header_name(b"CONTENT_TYPE"), b"content-type");
        assert!(is_header(b"CONTENT_TYPE", b"text/plain"));
        assert!(!is_header(b"CONTENT_LENGTH", b""));
        assert!(!is_header(b"HTTP_CONTENT_LENGTH", b"3"));
        assert!(!is_header(b"REMOTE_ADDR", b"127.0.0.1"));
    }

    #[test]
    fn the_first_of_a_name_wins() {
        let p: Params = [("REQUEST_METHOD", "POST"), ("REQUEST_METHOD", "GET")]
            .into_iter()
            .collect();
        assert_eq!(Cgi::read(&p).method, Some(&b"POST"[..]));
    }

    #[test]
    fn http_versions_as_asgi_spells_them() {
        let v = |s: &str| {
            let p: Params = [("SERVER_PROTOCOL", s)].into_iter().collect();
            Cgi::read(&p).http_version()
        };
        assert_eq!(v("HTTP/1.0"), "1.0");
        assert_eq!(v("HTTP/1.1"), "1.1");
        assert_eq!(v("HTTP/2.0"), "2");
        assert_eq!(v("HTTP/3"), "3");
    }
}
