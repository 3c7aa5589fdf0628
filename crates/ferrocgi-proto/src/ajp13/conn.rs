//! The AJP13 connection state machine (container side).

use super::decode::{forward_request, packet_header};
use super::{encode, headers, limits, Config, Error, Event};
use crate::ResponseHead;
use bytes::{Buf, BytesMut};

/// Where the connection is; see the [module documentation](super).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: packets carry a type byte.
    Idle,
    /// The request body is incomplete: every packet is a body packet. `remaining` is what
    /// Content-Length still announces, `None` for a chunked body.
    Body { remaining: Option<u64> },
    /// The body is complete; the response is being produced.
    Responding,
}

/// One AJP13 connection, container side: bytes in, [`Event`]s out; packets to write out.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    phase: Phase,
    /// A body packet was requested (or is the unsolicited first one) and has not arrived.
    outstanding: bool,
    /// `BodyEnd` is owed on the next `decode` call.
    body_end_pending: bool,
    /// Replies queued without the application (CPONG).
    output: BytesMut,
    /// The error already returned, returned again on every later call.
    failed: Option<Error>,
}

impl Connection {
    /// An idle connection. `config.max_packet` is clamped to
    /// [`limits::MIN_PACKET`]..=[`limits::MAX_PACKET_LIMIT`].
    pub fn new(mut config: Config) -> Self {
        config.max_packet = config
            .max_packet
            .clamp(limits::MIN_PACKET, limits::MAX_PACKET_LIMIT);
        Connection {
            config,
            phase: Phase::Idle,
            outstanding: false,
            body_end_pending: false,
            output: BytesMut::new(),
            failed: None,
        }
    }

    /// Decodes the next event from `buf`, consuming what it decodes.
    ///
    /// `Ok(None)`: more bytes are needed (CPINGs and empty packets may have been consumed,
    /// and a CPONG queued: check [`Connection::has_output`]). After an error, the same error
    /// is returned on every call.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.step(buf);
        if let Err(e) = r {
            self.failed = Some(e);
        }
        r
    }

    /// True when replies (CPONG) are queued for [`Connection::take_output`].
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Appends the queued replies to `out`.
    pub fn take_output(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.output);
        self.output.clear();
    }

    /// Writes one GET_BODY_CHUNK if the current request's body is incomplete and no chunk is
    /// outstanding (the unsolicited first chunk counts as outstanding until it arrives).
    /// Returns whether it wrote.
    ///
    /// The size asked for is `max_packet - 6` (the most data a standard body packet holds)
    /// or the remaining Content-Length, whichever is smaller.
    pub fn request_body_chunk(&mut self, out: &mut BytesMut) -> bool {
        let Phase::Body { remaining } = self.phase else {
            return false;
        };
        if self.outstanding || self.failed.is_some() {
            return false;
        }
        let max = (self.config.max_packet - 6) as u64;
        let size = remaining.map_or(max, |r| r.min(max));
        // size <= max_packet - 6 <= 65530.
        encode::get_body_chunk(out, size as u16);
        self.outstanding = true;
        true
    }

    /// Writes SEND_HEADERS for `head`; response header names in the AJP table are coded
    /// (ASCII case-insensitively). [`Error::ResponseHeadTooLarge`], with nothing written,
    /// when the packet would exceed `max_packet`.
    pub fn send_headers(&mut self, head: &ResponseHead, out: &mut BytesMut) -> Result<(), Error> {
        encode::send_headers(out, head, self.config.max_packet)
    }

    /// Writes `data` as SEND_BODY_CHUNK packets of at most `max_packet - 8` data bytes.
    /// Empty `data` writes nothing (an empty chunk means "flush" to Apache).
    pub fn send_body(&mut self, data: &[u8], out: &mut BytesMut) {
        encode::send_body_chunks(out, data, self.config.max_packet - 8);
    }

    /// Writes END_RESPONSE and returns to idle. A body chunk still in flight will be
    /// swallowed when it arrives. With `reuse` false the server closes the connection
    /// after writing.
    pub fn end_response(&mut self, reuse: bool, out: &mut BytesMut) {
        encode::end_response(out, reuse);
        self.phase = Phase::Idle;
        self.body_end_pending = false;
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Error> {
        loop {
            if self.body_end_pending {
                self.body_end_pending = false;
                return Ok(Some(Event::BodyEnd));
            }
            let Some(len) = packet_header(buf, self.config.max_packet)? else {
                return Ok(None);
            };
            // len <= max_packet - 4.
            let total = 4 + len;
            match self.phase {
                Phase::Idle if self.outstanding => {
                    // The previous request's body chunk, requested before its response
                    // ended: not a packet with a type byte. Expected; drop it.
                    if buf.len() < total {
                        return Ok(None);
                    }
                    buf.advance(total);
                    self.outstanding = false;
                }
                Phase::Idle | Phase::Responding if len == 0 => {
                    // lighttpd sends an empty body packet after every bodyless request.
                    buf.advance(4);
                }
                Phase::Responding => return Err(Error::UnexpectedPacket),
                Phase::Idle => {
                    let Some(&kind) = buf.get(4) else {
                        return Ok(None);
                    };
                    match kind {
                        headers::FORWARD_REQUEST
                        | headers::SHUTDOWN
                        | headers::PING
                        | headers::CPING => {}
                        t => return Err(Error::UnknownPacketType(t)),
                    }
                    if buf.len() < total {
                        return Ok(None);
                    }
                    let packet = buf.split_to(total).freeze().slice(4..);
                    match kind {
                        headers::FORWARD_REQUEST => {
                            let req = forward_request(packet, &self.config)?;
                            self.start_request(req.content_length, req.chunked);
                            return Ok(Some(Event::Request(Box::new(req))));
                        }
                        headers::SHUTDOWN => return Ok(Some(Event::Shutdown)),
                        _ => encode::cpong(&mut self.output),
                    }
                }
                Phase::Body { remaining } => {
                    if buf.len() < total {
                        return Ok(None);
                    }
                    return self.body_packet(buf, len, remaining);
                }
            }
        }
    }

    fn start_request(&mut self, content_length: Option<u64>, chunked: bool) {
        match (content_length, chunked) {
            (Some(n), _) if n > 0 => {
                self.phase = Phase::Body { remaining: Some(n) };
                // Apache and lighttpd send the first chunk without being asked.
                self.outstanding = true;
            }
            (None, true) => {
                self.phase = Phase::Body { remaining: None };
                self.outstanding = false;
            }
            _ => {
                self.phase = Phase::Responding;
                self.outstanding = false;
                self.body_end_pending = true;
            }
        }
    }

    /// Consumes one whole body packet (`buf` holds at least `4 + len` bytes).
    fn body_packet(
        &mut self,
        buf: &mut BytesMut,
        len: usize,
        remaining: Option<u64>,
    ) -> Result<Option<Event>, Error> {
        let data_start = if len == 0 || self.config.lighttpd_body_compat {
            4
        } else {
            if len < 2 || usize::from(u16::from_be_bytes([buf[4], buf[5]])) != len - 2 {
                return Err(Error::BadBodyPacket);
            }
            6
        };
        let n = 4 + len - data_start;
        if n == 0 {
            // The empty packet: the end of a chunked body.
            if remaining.is_some() {
                return Err(Error::BodyTruncated);
            }
            buf.advance(4 + len);
            self.outstanding = false;
            self.phase = Phase::Responding;
            return Ok(Some(Event::BodyEnd));
        }
        if let Some(r) = remaining {
            let left = r.checked_sub(n as u64).ok_or(Error::BodyTooLong)?;
            self.phase = Phase::Body {
                remaining: Some(left),
            };
            if left == 0 {
                self.phase = Phase::Responding;
                self.body_end_pending = true;
            }
        }
        self.outstanding = false;
        let data = buf.split_to(4 + len).freeze().slice(data_start..);
        Ok(Some(Event::Body(data)))
    }
}
