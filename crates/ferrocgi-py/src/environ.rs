//! Building the WSGI environ (PEP 3333) from CGI-style params.
//!
//! Keys and values are `str`, decoded as latin-1 (each byte one code point). Constant entries
//! are built once into a base dict that each request copies (a C-level copy), then the
//! request's params are set on top, with interned keys and, for a value equal to the one the
//! same param had last time, that value's `str` again.

use crate::input::InputStream;
use crate::paths::script_and_path;
use crate::settings::{HostSettings, ServerInfo};
use crate::wsgi::{ErrorStream, FileWrapper};
use ferrocgi_server::{Params, Protocol};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Mutex;

/// Most param names kept in [`EnvironBase`]'s key cache: the names front ends send are few,
/// but header names come from clients, and hostile ones must not grow it without bound.
pub const KEY_CACHE_MAX: usize = 256;

/// FNV-1a: param names are short, and SipHash's DoS resistance is moot for a capped map.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A param's environ key, and the last value seen for it: most params (the server's name and
/// address, the protocol, the method, common headers) repeat from request to request, and a
/// repeat reuses the `str` instead of decoding a new one. One value per name keeps it bounded.
struct Entry {
    key: Py<PyString>,
    last: Option<(Box<[u8]>, Py<PyString>)>,
}

/// Values longer than this are not kept as a param's last value.
const VALUE_CACHE_MAX_LEN: usize = 256;

type KeyCache = HashMap<Box<[u8]>, Entry, BuildHasherDefault<Fnv>>;

impl ServerInfo {
    pub(crate) fn to_mapping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = PyDict::new(py);
        d.set_item("protocol", self.protocol)?;
        d.set_item("method", &self.method)?;
        d.set_item("threads", self.threads)?;
        d.set_item("processes", self.processes)?;
        d.set_item("status_path", &self.status_path)?;
        d.set_item("interface", self.interface)?;
        d.set_item("version", env!("CARGO_PKG_VERSION"))?;
        // Read-only: every request's environ shares it (the base dict's copy is shallow).
        py.import("types")?.getattr("MappingProxyType")?.call1((d,))
    }
}

/// The constant part of every environ.
pub struct EnvironBase {
    dict: Py<PyDict>,
    /// Param name → its interned `str` (the environ key), so each request's keys are found,
    /// not built. Only touched with the GIL held; the lock is never contended.
    keys: Mutex<KeyCache>,
}

impl EnvironBase {
    /// The keys every request's environ starts with, made once per process.
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
        d.set_item("ferrocgi.server", s.server.to_mapping(py)?)?;
        Ok(EnvironBase {
            dict: d.unbind(),
            keys: Mutex::new(KeyCache::default()),
        })
    }
}

/// The environ key and value for a param, from the cache when they are there. `true` when the
/// key is interned (the name was valid UTF-8): the same name then always gives the same object.
fn key_value_for<'py>(
    py: Python<'py>,
    cache: &mut KeyCache,
    name: &[u8],
    value: &[u8],
) -> (Bound<'py, PyString>, Bound<'py, PyString>, bool) {
    if let Some(e) = cache.get_mut(name) {
        let v = match &e.last {
            Some((b, v)) if **b == *value => v.bind(py).clone(),
            _ => {
                let v = latin1(py, value);
                if value.len() <= VALUE_CACHE_MAX_LEN {
                    e.last = Some((value.into(), v.clone().unbind()));
                }
                v
            }
        };
        return (e.key.bind(py).clone(), v, true);
    }
    let v = latin1(py, value);
    match std::str::from_utf8(name) {
        // Interned only while the cache has room: on Python 3.12+ an interned string is
        // immortal, so interning every name a client makes up would leak memory for good.
        Ok(k) if cache.len() < KEY_CACHE_MAX => {
            let key = PyString::intern(py, k);
            let last =
                (value.len() <= VALUE_CACHE_MAX_LEN).then(|| (value.into(), v.clone().unbind()));
            let entry_key = key.clone().unbind();
            cache.insert(
                name.into(),
                Entry {
                    key: entry_key,
                    last,
                },
            );
            (key, v, true)
        }
        Ok(k) => (PyString::new(py, k), v, false),
        Err(_) => (latin1(py, name), v, false),
    }
}

/// Bytes as a latin-1 `str`.
pub fn latin1<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    // SAFETY: the pointer and length describe `b`; latin-1 decoding cannot fail (every byte
    // is a code point), short of memory, which pyo3 turns into a panic-free error check.
    unsafe {
        let p = pyo3::ffi::PyUnicode_DecodeLatin1(
            b.as_ptr().cast(),
            b.len() as pyo3::ffi::Py_ssize_t,
            std::ptr::null(),
        );
        if p.is_null() {
            // Only out of memory: fall back to the slow path, which reports it.
            drop(PyErr::take(py));
            return PyString::new(py, &b.iter().map(|&c| c as char).collect::<String>());
        }
        Bound::from_owned_ptr(py, p).cast_into_unchecked()
    }
}

/// The interned keys set so far, by address. A request's few dozen params are checked with a
/// scan of a short vector (cheaper than hashing them); past `SEEN_SCAN` they move to a hash
/// set, so a request with many params costs linear time, not quadratic.
#[derive(Default)]
struct Seen {
    few: Vec<*mut pyo3::ffi::PyObject>,
    many: Option<HashSet<*mut pyo3::ffi::PyObject, BuildHasherDefault<Fnv>>>,
}

const SEEN_SCAN: usize = 48;

impl Seen {
    /// Adds `key`; false if it was there already.
    fn insert(&mut self, key: *mut pyo3::ffi::PyObject) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > SEEN_SCAN {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

/// Appends a repeated header's `value` to `acc`, with HTTP's separator (`; ` for cookies).
fn join_header(name: &[u8], acc: &mut Vec<u8>, value: &[u8]) {
    let sep: &[u8] = if name == b"HTTP_COOKIE" { b"; " } else { b", " };
    acc.extend_from_slice(sep);
    acc.extend_from_slice(value);
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

/// Params whose key the base dict already holds.
fn in_base(name: &[u8]) -> bool {
    name == b"SERVER_SOFTWARE" || name.starts_with(b"wsgi.")
}

fn is_on(v: Option<&[u8]>) -> bool {
    matches!(v, Some(v) if v.eq_ignore_ascii_case(b"on") || v == b"1")
}

/// One request's environ: the base's copy, the CGI params as PEP 3333 wants them, the
/// streams and the paths.
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
    let mut cache = base.keys.lock().unwrap_or_else(|e| e.into_inner());
    // Keys set from params so far (interned ones are unique objects, compared by address): a
    // repeat is rare, and only a repeat needs a look at the dict.
    let mut seen = Seen::default();
    // Repeated headers, joined in Rust and set once at the end: joining in the dict at each
    // repeat would copy the whole value every time (quadratic in the number of repeats).
    let mut joined: HashMap<&[u8], (Bound<'py, PyString>, Vec<u8>)> = HashMap::new();
    for (name, value) in params.iter() {
        if skipped(name) {
            continue;
        }
        let (key, v, interned) = key_value_for(py, &mut cache, name, value);
        // (An address reused by a key dropped meanwhile only sends a name the safe way.)
        let repeat = !(interned && seen.insert(key.as_ptr())) || in_base(name);
        if repeat {
            // A repeated header (nginx sends one param per occurrence) is joined as HTTP says.
            if name.starts_with(b"HTTP_") {
                if let Some(acc) = joined.get_mut(name) {
                    join_header(name, &mut acc.1, value);
                    continue;
                }
                if let Some(prev) = env.get_item(&key)? {
                    let prev = prev.cast_into::<PyString>()?;
                    let mut acc: Vec<u8> = prev.to_cow()?.chars().map(|c| c as u8).collect();
                    join_header(name, &mut acc, value);
                    joined.insert(name, (key, acc));
                    continue;
                }
            } else if env.contains(&key)? && !name.starts_with(b"wsgi.") {
                continue; // first one wins for CGI variables
            }
        }
        env.set_item(key, v)?;
    }
    for (key, value) in joined.into_values() {
        env.set_item(key, latin1(py, &value))?;
    }
    drop(cache);
    set_derived(py, &env, s, protocol, params, body_len)?;
    env.set_item(pyo3::intern!(py, "wsgi.input"), input)?;
    env.set_item(pyo3::intern!(py, "wsgi.errors"), errors)?;
    Ok(env)
}

/// What the server works out rather than copies: SCRIPT_NAME and PATH_INFO, the body's
/// length, PEP 3333's required keys when the front end left them out, `wsgi.url_scheme`.
fn set_derived(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    s: &HostSettings,
    protocol: Protocol,
    params: &Params,
    body_len: u64,
) -> PyResult<()> {
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
        (pyo3::intern!(py, "REQUEST_METHOD"), "GET"),
        (pyo3::intern!(py, "QUERY_STRING"), ""),
        (pyo3::intern!(py, "SERVER_PROTOCOL"), "HTTP/1.1"),
        (pyo3::intern!(py, "SERVER_NAME"), "localhost"),
        (pyo3::intern!(py, "SERVER_PORT"), "80"),
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_cache_is_capped_and_only_cached_keys_are_interned() {
        Python::initialize();
        Python::attach(|py| {
            let mut cache = KeyCache::default();
            for i in 0..1000 {
                let name = format!("HTTP_X_HOSTILE_{i}");
                let (k, v, interned) = key_value_for(py, &mut cache, name.as_bytes(), b"v");
                // Past the cap, names are plain strings: interned ones never die on 3.12.
                assert_eq!(interned, i < KEY_CACHE_MAX, "{i}");
                assert_eq!(k.to_cow().unwrap(), name);
                assert_eq!(v.to_cow().unwrap(), "v");
                let (again, _, _) = key_value_for(py, &mut cache, name.as_bytes(), b"w");
                assert_eq!(again.is(&k), i < KEY_CACHE_MAX, "{i}");
            }
            assert_eq!(cache.len(), KEY_CACHE_MAX);
            let (k, _, interned) = key_value_for(py, &mut cache, b"X_\xff", b"");
            assert!(!interned);
            assert_eq!(k.to_cow().unwrap(), "X_\u{ff}");
            assert_eq!(latin1(py, b"caf\xe9").to_cow().unwrap(), "caf\u{e9}");
        });
    }

    #[test]
    fn a_repeated_value_is_reused_and_a_new_one_replaces_it() {
        Python::initialize();
        Python::attach(|py| {
            let mut cache = KeyCache::default();
            let (_, a, _) = key_value_for(py, &mut cache, b"SERVER_NAME", b"example.org");
            let (_, b, _) = key_value_for(py, &mut cache, b"SERVER_NAME", b"example.org");
            assert!(a.is(&b));
            let (_, c, _) = key_value_for(py, &mut cache, b"SERVER_NAME", b"caf\xe9.org");
            assert_eq!(c.to_cow().unwrap(), "caf\u{e9}.org");
            let (_, d, _) = key_value_for(py, &mut cache, b"SERVER_NAME", b"caf\xe9.org");
            assert!(c.is(&d));
            let (_, e, _) = key_value_for(py, &mut cache, b"SERVER_NAME", b"example.org");
            assert!(!e.is(&a));
            assert_eq!(e.to_cow().unwrap(), "example.org");
            let long = vec![b'x'; VALUE_CACHE_MAX_LEN + 1];
            let (_, f, _) = key_value_for(py, &mut cache, b"SERVER_NAME", &long);
            let (_, g, _) = key_value_for(py, &mut cache, b"SERVER_NAME", &long);
            assert!(!f.is(&g));
            assert_eq!(g.to_cow().unwrap().len(), VALUE_CACHE_MAX_LEN + 1);
        });
    }
}
