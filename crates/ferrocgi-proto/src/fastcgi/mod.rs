//! FastCGI 1.0, application side (STUB: the API contract; bodies to be written).
#![allow(missing_docs, unused_variables, dead_code)]

use crate::Params;
use bytes::{Bytes, BytesMut};
use std::fmt;

/// Named limits.
pub mod limits {
    /// Most bytes of one request's PARAMS stream.
    pub const MAX_PARAMS_BYTES: usize = 256 * 1024;
    /// Most name/value pairs in one request's PARAMS stream.
    pub const MAX_PARAMS_PAIRS: usize = 1024;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    UnsupportedVersion(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    RequestComplete = 0,
    CantMpxConn = 1,
    Overloaded = 2,
    UnknownRole = 3,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub max_conns: u32,
    pub max_reqs: u32,
    pub multiplex: bool,
    pub max_params_bytes: usize,
    pub max_params_pairs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_conns: 1024,
            max_reqs: 1024,
            multiplex: false,
            max_params_bytes: limits::MAX_PARAMS_BYTES,
            max_params_pairs: limits::MAX_PARAMS_PAIRS,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Request {
        id: u16,
        keep_conn: bool,
        params: Params,
    },
    Stdin {
        id: u16,
        data: Bytes,
    },
    StdinEnd {
        id: u16,
    },
    Abort {
        id: u16,
    },
}

pub struct Connection {}

impl Connection {
    pub fn new(config: Config) -> Self {
        unimplemented!()
    }
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Error> {
        unimplemented!()
    }
    pub fn has_output(&self) -> bool {
        unimplemented!()
    }
    pub fn take_output(&mut self, out: &mut BytesMut) {
        unimplemented!()
    }
    pub fn write_stdout(&mut self, id: u16, data: &[u8], out: &mut BytesMut) {
        unimplemented!()
    }
    pub fn write_stderr(&mut self, id: u16, data: &[u8], out: &mut BytesMut) {
        unimplemented!()
    }
    pub fn end_request(
        &mut self,
        id: u16,
        app_status: u32,
        status: ProtocolStatus,
        out: &mut BytesMut,
    ) -> bool {
        unimplemented!()
    }
    pub fn active_requests(&self) -> usize {
        unimplemented!()
    }
}
