//! Building the WSGI environ (PEP 3333) from CGI-style params.
//!
//! Keys and values are `str`, decoded as latin-1 (each byte one code point). Constant entries
//! are built once into a base dict that each request copies (a C-level copy), then the
//! request's params are set on top, with interned keys.

use crate::host::HostSettings;
use crate::input::InputStream;
use crate::paths::script_and_path;
use crate::wsgi::{ErrorStream, FileWrapper};
use ferrocgi_server::{Params, Protocol};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

/// The constant part of every environ.
pub struct EnvironBase {
    dict: Py<PyDict>,
}

impl EnvironBase {
    pub fn new(py: Python<'_>, s: &HostSettings) -> PyResult<Self> {
        let d = PyDict::new(py);
        d.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        d.set_item("wsgi.multithread", s.multithread)?;
        d.set_item("wsgi.multiprocess", s.multiprocess)?;
        d.set_item("wsgi.run_once", false)?;
        // The whole body is collected before the application runs: reading to EOF is safe.
        d.set_item("wsgi.input_terminated", true)?;
        d.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        d.set_item(
            "SERVER_SOFTWARE",
            concat!("ferrocgi/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(EnvironBase { dict: d.unbind() })
    }
}

/// Bytes as a latin-1 `str`.
pub fn latin1<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(b) {
        Ok(s) if b.is_ascii() => PyString::new(py, s),
        _ => PyString::new(py, &b.iter().map(|&c| c as char).collect::<String>()),
    }
}

/// Params the environ sets itself (or must not carry, per PEP 3333).
fn skipped(name: &[u8]) -> bool {
    matches!(
        name,
        b"SCRIPT_NAME"
            | b"PATH_INFO"
            | b"CONTENT_LENGTH"
            | b"HTTP_CONTENT_LENGTH"
            | b"HTTP_CONTENT_TYPE"
    )
}

fn is_on(v: Option<&[u8]>) -> bool {
    matches!(v, Some(v) if v.eq_ignore_ascii_case(b"on") || v == b"1")
}

#[allow(clippy::too_many_arguments)]
pub fn build_environ<'py>(
    py: Python<'py>,
    base: &EnvironBase,
    s: &HostSettings,
    protocol: Protocol,
    params: &Params,
    body_len: u64,
    input: Py<InputStream>,
    errors: Py<ErrorStream>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = base.dict.bind(py).copy()?;
    for (name, value) in params.iter() {
        if skipped(name) {
            continue;
        }
        let key = match std::str::from_utf8(name) {
            Ok(k) => PyString::intern(py, k),
            Err(_) => latin1(py, name),
        };
        let v = latin1(py, value);
        // A repeated header (nginx sends one param per occurrence) is joined as HTTP says.
        if name.starts_with(b"HTTP_") {
            if let Some(prev) = env.get_item(&key)? {
                let sep = if name == b"HTTP_COOKIE" { "; " } else { ", " };
                let joined = format!("{}{sep}{}", prev.extract::<String>()?, v.to_cow()?);
                env.set_item(&key, joined)?;
                continue;
            }
        } else if env.contains(&key)? && !key.to_cow()?.starts_with("wsgi.") {
            continue; // first one wins for CGI variables
        }
        env.set_item(key, v)?;
    }
    let (sn, pi) = script_and_path(
        params,
        protocol,
        s.script_name.as_deref(),
        s.ajp_path_decoded,
    );
    env.set_item(pyo3::intern!(py, "SCRIPT_NAME"), latin1(py, &sn))?;
    env.set_item(pyo3::intern!(py, "PATH_INFO"), latin1(py, &pi))?;
    env.set_item(pyo3::intern!(py, "CONTENT_LENGTH"), body_len.to_string())?;
    for (k, default) in [
        ("REQUEST_METHOD", "GET"),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
    ] {
        if !env.contains(k)? {
            env.set_item(k, default)?;
        }
    }
    let https = is_on(params.get(b"HTTPS"))
        || params
            .get(b"REQUEST_SCHEME")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"https"));
    env.set_item(
        pyo3::intern!(py, "wsgi.url_scheme"),
        if https { "https" } else { "http" },
    )?;
    env.set_item(pyo3::intern!(py, "wsgi.input"), input)?;
    env.set_item(pyo3::intern!(py, "wsgi.errors"), errors)?;
    Ok(env)
}
