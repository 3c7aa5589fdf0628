//! The request body: collected before the application runs, then read through `wsgi.input`.
//!
//! The body is read on the async side, into memory or, past `spool_threshold`, into an
//! anonymous temporary file. So no Python thread ever waits on the network, a body that came
//! without a declared length (a chunked upload) gets its real CONTENT_LENGTH — Django reads
//! exactly CONTENT_LENGTH bytes (docs/protocols.md) — and `max_body` is enforced before any
//! Python code runs.

use bytes::{Bytes, BytesMut};
use ferrocgi_server::{Body, StreamError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, Write};
use std::sync::Mutex;

/// A complete request body.
pub enum BodyData {
    /// Small bodies.
    Memory(Bytes),
    /// Bodies past the spool threshold, in an unlinked temporary file positioned at 0.
    File(std::fs::File),
}

/// Why a body could not be collected.
#[derive(Debug)]
pub enum CollectError {
    /// Longer than `max_body` (declared or actual): answer 413.
    TooLarge(u64),
    /// The front end aborted or went away.
    Stream(StreamError),
    /// The spool file could not be written.
    Io(io::Error),
}

/// Reads the whole body. Memory stays bounded by `threshold` plus one chunk.
pub async fn collect(
    body: &mut Body,
    threshold: u64,
    max: Option<u64>,
) -> Result<(BodyData, u64), CollectError> {
    if let (Some(d), Some(m)) = (body.declared_length(), max) {
        if d > m {
            return Err(CollectError::TooLarge(d));
        }
    }
    let mut mem = BytesMut::new();
    let mut file: Option<std::fs::File> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = body.chunk().await.map_err(CollectError::Stream)? {
        total += chunk.len() as u64;
        if max.is_some_and(|m| total > m) {
            return Err(CollectError::TooLarge(total));
        }
        if let Some(f) = file.as_mut() {
            // Page-cache writes of at most one chunk: short enough to do in place.
            f.write_all(&chunk).map_err(CollectError::Io)?;
        } else if mem.len() as u64 + chunk.len() as u64 > threshold {
            let mut f = tempfile::tempfile().map_err(CollectError::Io)?;
            f.write_all(&mem).map_err(CollectError::Io)?;
            f.write_all(&chunk).map_err(CollectError::Io)?;
            mem = BytesMut::new();
            file = Some(f);
        } else if mem.is_empty() {
            // The common case of a body in one chunk: no copy.
            mem = BytesMut::from(chunk);
        } else {
            mem.extend_from_slice(&chunk);
        }
    }
    Ok(match file {
        Some(mut f) => {
            f.rewind().map_err(CollectError::Io)?;
            (BodyData::File(f), total)
        }
        None => (BodyData::Memory(mem.freeze()), total),
    })
}

/// `wsgi.input`: a read-only binary stream over the collected body.
#[pyclass(module = "ferrocgi._ferrocgi", name = "InputStream")]
pub struct InputStream {
    inner: Mutex<Source>,
}

enum Source {
    Memory(Cursor<Bytes>),
    File(BufReader<std::fs::File>),
}

impl InputStream {
    /// A stream over `data`.
    pub fn new(data: BodyData) -> Self {
        let inner = match data {
            BodyData::Memory(b) => Source::Memory(Cursor::new(b)),
            BodyData::File(f) => Source::File(BufReader::with_capacity(64 * 1024, f)),
        };
        InputStream {
            inner: Mutex::new(inner),
        }
    }

    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn BufRead) -> io::Result<R> + Send,
    ) -> PyResult<R>
    where
        R: Send,
    {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *guard {
            // Memory: a copy at most, cheaper than releasing the GIL.
            Source::Memory(c) => f(c).map_err(PyErr::from),
            // File reads may touch the disk: let other Python threads run meanwhile.
            Source::File(r) => py.detach(|| f(r)).map_err(PyErr::from),
        }
    }

    /// `read(size)` of an in-memory body: one copy, straight into the new `bytes`.
    fn read_memory<'py>(
        &self,
        py: Python<'py>,
        size: Option<usize>,
    ) -> Option<Bound<'py, PyBytes>> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Source::Memory(c) = &mut *guard else {
            return None;
        };
        let pos = usize::try_from(c.position())
            .unwrap_or(usize::MAX)
            .min(c.get_ref().len());
        let rest = &c.get_ref()[pos..];
        let n = size.map_or(rest.len(), |s| s.min(rest.len()));
        let out = PyBytes::new(py, &rest[..n]);
        c.set_position((pos + n) as u64);
        Some(out)
    }
}

fn read_line(r: &mut dyn BufRead, limit: Option<usize>) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let room = limit.map_or(usize::MAX, |l| l - line.len());
        if room == 0 {
            break;
        }
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let window = &buf[..buf.len().min(room)];
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&window[..=i]);
                r.consume(i + 1);
                break;
            }
            None => {
                let n = window.len();
                line.extend_from_slice(window);
                r.consume(n);
            }
        }
    }
    Ok(line)
}

fn size_arg(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl InputStream {
    /// Reads up to `size` bytes, or everything left when `size` is omitted or negative.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        if let Some(b) = self.read_memory(py, size_arg(size)) {
            return Ok(b);
        }
        let data = self.with(py, |r| {
            let mut out = Vec::with_capacity(size_arg(size).unwrap_or(0).min(1 << 20));
            match size_arg(size) {
                Some(n) => {
                    r.take(n as u64).read_to_end(&mut out)?;
                }
                None => {
                    r.read_to_end(&mut out)?;
                }
            }
            Ok(out)
        })?;
        Ok(PyBytes::new(py, &data))
    }

    /// Reads one line (up to and including `\n`), at most `size` bytes.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.with(py, |r| read_line(r, size_arg(size)))?;
        Ok(PyBytes::new(py, &line))
    }

    /// Reads lines until the end, or until about `hint` bytes were read.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = size_arg(hint).filter(|&h| h > 0);
        let lines = self.with(py, |r| {
            let mut lines = Vec::new();
            let mut total = 0;
            loop {
                let l = read_line(r, None)?;
                if l.is_empty() {
                    break;
                }
                total += l.len();
                lines.push(l);
                if hint.is_some_and(|h| total >= h) {
                    break;
                }
            }
            Ok(lines)
        })?;
        PyList::new(py, lines.iter().map(|l| PyBytes::new(py, l)))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.with(py, |r| read_line(r, None))?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn readable(&self) -> bool {
        true
    }

    fn seekable(&self) -> bool {
        false
    }

    fn close(&self) {}

    fn write(&self, _data: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyValueError::new_err("wsgi.input is read-only"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_respect_limits() {
        let mut r = Cursor::new(b"ab\ncdef\n\ngh".to_vec());
        assert_eq!(read_line(&mut r, None).unwrap(), b"ab\n");
        assert_eq!(read_line(&mut r, Some(2)).unwrap(), b"cd");
        assert_eq!(read_line(&mut r, None).unwrap(), b"ef\n");
        assert_eq!(read_line(&mut r, None).unwrap(), b"\n");
        assert_eq!(read_line(&mut r, Some(0)).unwrap(), b"");
        assert_eq!(read_line(&mut r, None).unwrap(), b"gh");
        assert_eq!(read_line(&mut r, None).unwrap(), b"");
    }
}
