//! `wsgi.errors` and `wsgi.file_wrapper`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use tracing::warn;

/// `wsgi.errors`: lines written here go to the server's error log, tagged with the request.
#[pyclass(module = "ferrocgi._ferrocgi", name = "ErrorStream", frozen)]
pub struct ErrorStream {
    uri: String,
    peer: Arc<str>,
    partial: Mutex<String>,
}

impl ErrorStream {
    /// `wsgi.errors` for the request to `uri` from `peer`.
    pub fn new(uri: String, peer: Arc<str>) -> Self {
        ErrorStream {
            uri,
            peer,
            partial: Mutex::new(String::new()),
        }
    }

    fn emit(&self, line: &str) {
        warn!(target: "ferrocgi::app", uri = %self.uri, peer = %self.peer, "wsgi.errors: {line}");
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, s: &str) -> usize {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        partial.push_str(s);
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            self.emit(line.trim_end_matches(['\n', '\r']));
        }
        s.len()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for l in lines.try_iter()? {
            self.write(&l?.extract::<String>()?);
        }
        Ok(())
    }

    fn flush(&self) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        if !partial.is_empty() {
            let line = std::mem::take(&mut *partial);
            drop(partial);
            self.emit(&line);
        }
    }
}

impl Drop for ErrorStream {
    fn drop(&mut self) {
        let rest = std::mem::take(self.partial.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !rest.is_empty() {
            self.emit(&rest);
        }
    }
}

/// `wsgi.file_wrapper(filelike, blksize=8192)`. When the application returns it around a real
/// file, the host reads the file itself, with the GIL released; otherwise it iterates it.
#[pyclass(module = "ferrocgi._ferrocgi", name = "FileWrapper", frozen)]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    /// Bytes per read.
    pub blksize: usize,
}

impl FileWrapper {
    /// A duplicate of the wrapped file's descriptor, positioned where the file is, when it is
    /// a regular file (not a pipe or socket, which Python-side buffering could have read ahead).
    pub fn dup_file(&self, py: Python<'_>) -> Option<std::fs::File> {
        let f = self.filelike.bind(py);
        let fd: i32 = f.call_method0("fileno").ok()?.extract().ok()?;
        // Duplicated before any other Python code runs: `tell()` could close the file (and the
        // number be reused by another open) if it were called first.
        let dup = nix_dup(fd)?;
        let pos: u64 = f.call_method0("tell").ok()?.extract().ok()?;
        let file = std::fs::File::from(dup);
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        use std::io::Seek;
        let mut file = file;
        file.seek(std::io::SeekFrom::Start(pos)).ok()?;
        Some(file)
    }
}

fn nix_dup(fd: i32) -> Option<OwnedFd> {
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` came from the file object's fileno(); the object (kept alive by the
    // wrapper, under the GIL) holds it open for the duration of this borrow.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned().ok()
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper { filelike, blksize }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        let b = data.cast_into::<PyBytes>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err("wsgi.file_wrapper: read() must return bytes")
        })?;
        Ok((!b.as_bytes().is_empty()).then_some(b))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}
