//! The `http` scope of a request, from the gateway's CGI params (asgiref's HTTP connection
//! scope), with the same SCRIPT_NAME/PATH_INFO rules as the WSGI environ ([`crate::paths`]).

use crate::paths::script_and_path;
use crate::settings::HostSettings;
use ferrocgi_server::{Params, Protocol};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

/// `HTTP/1.1` → `1.1`; HTTP/2 and /3 are `2` and `3` as the spec spells them.
fn http_version(p: &Params) -> &'static str {
    match p.get(b"SERVER_PROTOCOL").unwrap_or(b"HTTP/1.1") {
        b"HTTP/1.0" => "1.0",
        b"HTTP/2" | b"HTTP/2.0" => "2",
        b"HTTP/3" | b"HTTP/3.0" => "3",
        _ => "1.1",
    }
}

fn is_https(p: &Params) -> bool {
    matches!(p.get(b"HTTPS"), Some(v) if v.eq_ignore_ascii_case(b"on") || v == b"1")
        || p.get(b"REQUEST_SCHEME")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"https"))
}

/// The header name an `HTTP_*` param (or CONTENT_TYPE/CONTENT_LENGTH) stands for, lower-case
/// with dashes; `None` for params that are not headers.
fn header_name(param: &[u8]) -> Option<Vec<u8>> {
    let rest = match param {
        b"CONTENT_TYPE" | b"CONTENT_LENGTH" => param,
        // Sent again as CONTENT_*, which the front end may have corrected (a chunked body).
        b"HTTP_CONTENT_TYPE" | b"HTTP_CONTENT_LENGTH" => return None,
        _ => param.strip_prefix(b"HTTP_")?,
    };
    Some(
        rest.iter()
            .map(|&c| match c {
                b'_' => b'-',
                c => c.to_ascii_lowercase(),
            })
            .collect(),
    )
}

fn headers<'py>(py: Python<'py>, p: &Params) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (name, value) in p.iter() {
        let Some(h) = header_name(name) else { continue };
        if value.is_empty() && !name.starts_with(b"HTTP_") {
            continue; // nginx sends CONTENT_TYPE and CONTENT_LENGTH empty when there are none
        }
        let pair = PyTuple::new(py, [PyBytes::new(py, &h), PyBytes::new(py, value)])?;
        list.append(pair)?;
    }
    Ok(list)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `[host, port]` from two params, when the first is there.
fn address<'py>(
    py: Python<'py>,
    p: &Params,
    host: &[u8],
    port: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let Some(h) = p.get(host).filter(|h| !h.is_empty()) else {
        return Ok(py.None().into_bound(py));
    };
    let port: u16 = p
        .get(port)
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    Ok(PyList::new(
        py,
        [
            text(h).into_pyobject(py)?.into_any(),
            port.into_pyobject(py)?.into_any(),
        ],
    )?
    .into_any())
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
    let scope = base.copy()?;
    let (sn, pi) = script_and_path(p, protocol, s.script_name.as_deref(), s.ajp_path_decoded);
    let uri = p.get(b"REQUEST_URI").unwrap_or(b"");
    let raw_path = uri.split(|&c| c == b'?').next().unwrap_or(b"");
    let mut path = sn.clone();
    path.extend_from_slice(&pi);
    if path.is_empty() {
        path.push(b'/');
    }
    let method = p.get(b"REQUEST_METHOD").unwrap_or(b"GET");
    scope.set_item(pyo3::intern!(py, "http_version"), http_version(p))?;
    scope.set_item(
        pyo3::intern!(py, "method"),
        text(method).to_ascii_uppercase(),
    )?;
    scope.set_item(
        pyo3::intern!(py, "scheme"),
        if is_https(p) { "https" } else { "http" },
    )?;
    scope.set_item(pyo3::intern!(py, "path"), text(&path))?;
    scope.set_item(pyo3::intern!(py, "raw_path"), PyBytes::new(py, raw_path))?;
    scope.set_item(
        pyo3::intern!(py, "query_string"),
        PyBytes::new(py, p.get(b"QUERY_STRING").unwrap_or(b"")),
    )?;
    scope.set_item(pyo3::intern!(py, "root_path"), text(&sn))?;
    scope.set_item(pyo3::intern!(py, "headers"), headers(py, p)?)?;
    scope.set_item(
        pyo3::intern!(py, "client"),
        address(py, p, b"REMOTE_ADDR", b"REMOTE_PORT")?,
    )?;
    let server_host: &[u8] = if p.get(b"SERVER_ADDR").is_some() {
        b"SERVER_ADDR"
    } else {
        b"SERVER_NAME"
    };
    scope.set_item(
        pyo3::intern!(py, "server"),
        address(py, p, server_host, b"SERVER_PORT")?,
    )?;
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
        assert_eq!(
            header_name(b"HTTP_ACCEPT_ENCODING").unwrap(),
            b"accept-encoding"
        );
        assert_eq!(header_name(b"CONTENT_TYPE").unwrap(), b"content-type");
        assert_eq!(header_name(b"HTTP_CONTENT_LENGTH"), None);
        assert_eq!(header_name(b"REMOTE_ADDR"), None);
    }

    #[test]
    fn http_versions_as_asgi_spells_them() {
        let v = |s: &str| http_version(&[("SERVER_PROTOCOL", s)].into_iter().collect());
        assert_eq!(v("HTTP/1.0"), "1.0");
        assert_eq!(v("HTTP/1.1"), "1.1");
        assert_eq!(v("HTTP/2.0"), "2");
        assert_eq!(v("HTTP/3"), "3");
    }
}
