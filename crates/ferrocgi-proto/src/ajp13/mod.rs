//! AJP 1.3, container side (STUB: the API contract; bodies to be written).
#![allow(missing_docs, unused_variables, dead_code)]

use crate::{Params, ResponseHead};
use bytes::{Bytes, BytesMut};
use std::fmt;

pub mod limits {
    pub const DEFAULT_MAX_PACKET: usize = 8192;
    pub const MAX_PACKET_LIMIT: usize = 65536;
    pub const MAX_HEADERS: usize = 1024;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    BadMagic,
    ResponseHeadTooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub max_packet: usize,
    pub lighttpd_body_compat: bool,
    pub max_headers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_packet: limits::DEFAULT_MAX_PACKET,
            lighttpd_body_compat: false,
            max_headers: limits::MAX_HEADERS,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForwardRequest {
    pub method: Bytes,
    pub protocol: Bytes,
    pub req_uri: Bytes,
    pub remote_addr: Bytes,
    pub remote_host: Bytes,
    pub server_name: Bytes,
    pub server_port: u16,
    pub is_ssl: bool,
    pub headers: Vec<(Bytes, Bytes)>,
    pub query_string: Option<Bytes>,
    pub remote_user: Option<Bytes>,
    pub auth_type: Option<Bytes>,
    pub secret: Option<Bytes>,
    pub content_length: Option<u64>,
    pub chunked: bool,
}

impl ForwardRequest {
    pub fn to_params(&self) -> Params {
        unimplemented!()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Request(Box<ForwardRequest>),
    Body(Bytes),
    BodyEnd,
    Shutdown,
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
    pub fn request_body_chunk(&mut self, out: &mut BytesMut) -> bool {
        unimplemented!()
    }
    pub fn send_headers(&mut self, head: &ResponseHead, out: &mut BytesMut) -> Result<(), Error> {
        unimplemented!()
    }
    pub fn send_body(&mut self, data: &[u8], out: &mut BytesMut) {
        unimplemented!()
    }
    pub fn end_response(&mut self, reuse: bool, out: &mut BytesMut) {
        unimplemented!()
    }
}
