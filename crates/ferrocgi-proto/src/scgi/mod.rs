//! SCGI, application side (STUB: the API contract; bodies to be written).
#![allow(missing_docs, unused_variables, dead_code)]

use crate::{Params, ResponseHead};
use bytes::{Bytes, BytesMut};
use std::fmt;

pub mod limits {
    pub const MAX_HEADER_BYTES: usize = 256 * 1024;
    pub const MAX_HEADER_PAIRS: usize = 1024;
    pub const MAX_NETSTRING_DIGITS: usize = 7;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    BadNetstringLength,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub max_header_bytes: usize,
    pub max_header_pairs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_header_bytes: limits::MAX_HEADER_BYTES,
            max_header_pairs: limits::MAX_HEADER_PAIRS,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Request { params: Params, content_length: u64 },
    Body(Bytes),
    BodyEnd,
}

pub struct Connection {}

impl Connection {
    pub fn new(config: Config) -> Self {
        unimplemented!()
    }
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Error> {
        unimplemented!()
    }
}

pub fn write_head(head: &ResponseHead, out: &mut BytesMut) {
    head.encode_cgi(out)
}
