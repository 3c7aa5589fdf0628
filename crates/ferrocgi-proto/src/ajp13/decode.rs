//! Parsers: the web server's packet header, FORWARD_REQUEST, and (for tests) container
//! packets.

use super::headers::{self, attr};
use super::{limits, Config, Error, ForwardRequest};
use bytes::{Buf, Bytes, BytesMut};

/// Checks the start of a web-server packet in `buf`.
///
/// Returns `Ok(Some(len))` (payload length) once the 4-byte header is there, `Ok(None)` if
/// not yet; bad magic is reported from the first wrong byte, and a length over
/// `max_packet - 4` before any of the payload is buffered.
pub(crate) fn packet_header(buf: &[u8], max_packet: usize) -> Result<Option<usize>, Error> {
    if buf
        .first()
        .is_some_and(|&b| b != headers::MAGIC_FROM_SERVER[0])
        || buf
            .get(1)
            .is_some_and(|&b| b != headers::MAGIC_FROM_SERVER[1])
    {
        return Err(Error::BadMagic);
    }
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    // max_packet is clamped to >= MIN_PACKET, so the subtraction cannot underflow.
    if len > max_packet.saturating_sub(4) {
        return Err(Error::PacketTooLarge);
    }
    Ok(Some(len))
}

/// A cursor over one packet's payload; every read is bounds-checked.
struct Reader {
    data: Bytes,
    pos: usize,
}

impl Reader {
    fn u8(&mut self) -> Result<u8, Error> {
        let b = *self.data.get(self.pos).ok_or(Error::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn peek_u16(&self) -> Result<u16, Error> {
        match self.data.get(self.pos..self.pos + 2) {
            Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
            None => Err(Error::Truncated),
        }
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let v = self.peek_u16()?;
        self.pos += 2;
        Ok(v)
    }

    /// An AJP string: u16 length, bytes, NUL; length 0xFFFF is the null string (`None`).
    fn string(&mut self) -> Result<Option<Bytes>, Error> {
        let len = self.u16()?;
        if len == 0xFFFF {
            return Ok(None);
        }
        let start = self.pos;
        // start <= data.len() <= 65535 and len < 65535: no overflow.
        let end = start + usize::from(len);
        if end >= self.data.len() {
            return Err(Error::Truncated);
        }
        if self.data[end] != 0 {
            return Err(Error::MissingNul);
        }
        self.pos = end + 1;
        Ok(Some(self.data.slice(start..end)))
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// Parses a Content-Length value: 1 to 19 ASCII digits.
pub(crate) fn parse_content_length(v: &[u8]) -> Result<u64, Error> {
    if v.is_empty() || v.len() > limits::MAX_CONTENT_LENGTH_DIGITS {
        return Err(Error::BadContentLength);
    }
    v.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(Error::BadContentLength);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(Error::BadContentLength)
    })
}

/// Parses a FORWARD_REQUEST payload, `payload[0]` being the type byte.
pub(crate) fn forward_request(payload: Bytes, config: &Config) -> Result<ForwardRequest, Error> {
    let mut r = Reader {
        data: payload,
        pos: 1,
    };
    let method_code = r.u8()?;
    let method = if method_code == headers::SC_M_JK_STORED {
        None
    } else {
        Some(headers::method_name(method_code).ok_or(Error::UnknownMethod(method_code))?)
    };
    let mut req = ForwardRequest {
        protocol: r.string()?.unwrap_or_default(),
        req_uri: r.string()?.unwrap_or_default(),
        remote_addr: r.string()?.unwrap_or_default(),
        remote_host: r.string()?.unwrap_or_default(),
        server_name: r.string()?.unwrap_or_default(),
        server_port: r.u16()?,
        is_ssl: r.u8()? != 0,
        ..ForwardRequest::default()
    };
    read_headers(&mut r, config, &mut req)?;
    read_attributes(&mut r, config, &mut req)?;
    if !r.is_empty() {
        return Err(Error::TrailingBytes);
    }
    req.method = match method {
        Some(m) => Bytes::from_static(m.as_bytes()),
        None => req
            .stored_method
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or(Error::MissingStoredMethod)?,
    };
    body_framing(&mut req)?;
    Ok(req)
}

/// The header count and the headers (coded names or strings).
fn read_headers(r: &mut Reader, config: &Config, req: &mut ForwardRequest) -> Result<(), Error> {
    let num_headers = usize::from(r.u16()?);
    if num_headers > config.max_headers {
        return Err(Error::TooManyHeaders);
    }
    // Each header takes at least 5 bytes of the (bounded) packet; cap the reservation by
    // what the packet could hold, never by the peer's count alone.
    req.headers
        .reserve(num_headers.min(r.data.len().saturating_sub(r.pos) / 5));
    for _ in 0..num_headers {
        let code = r.peek_u16()?;
        let name = if code >> 8 == 0xA0 {
            r.pos += 2;
            Bytes::from_static(
                headers::request_header_name(code)
                    .ok_or(Error::UnknownHeaderCode(code))?
                    .as_bytes(),
            )
        } else {
            r.string()?.ok_or(Error::NullHeaderName)?
        };
        let value = r.string()?.unwrap_or_default();
        req.headers.push((name, value));
    }
    Ok(())
}

/// The attributes, up to ARE_DONE.
fn read_attributes(r: &mut Reader, config: &Config, req: &mut ForwardRequest) -> Result<(), Error> {
    loop {
        match r.u8()? {
            attr::ARE_DONE => return Ok(()),
            attr::CONTEXT => req.context = r.string()?,
            attr::SERVLET_PATH => req.servlet_path = r.string()?,
            attr::REMOTE_USER => req.remote_user = r.string()?,
            attr::AUTH_TYPE => req.auth_type = r.string()?,
            attr::QUERY_STRING => req.query_string = r.string()?,
            attr::JVM_ROUTE => req.jvm_route = r.string()?,
            attr::SSL_CERT => req.ssl_cert = r.string()?,
            attr::SSL_CIPHER => req.ssl_cipher = r.string()?,
            attr::SSL_SESSION => req.ssl_session = r.string()?,
            attr::REQ_ATTRIBUTE => {
                // Attributes become params too: together with the headers, bounded by
                // the same limit.
                if req.headers.len() + req.req_attributes.len() >= config.max_headers {
                    return Err(Error::TooManyHeaders);
                }
                let name = r.string()?.unwrap_or_default();
                let value = r.string()?.unwrap_or_default();
                req.req_attributes.push((name, value));
            }
            attr::SSL_KEY_SIZE => req.ssl_key_size = Some(r.u16()?),
            attr::SECRET => req.secret = r.string()?,
            attr::STORED_METHOD => req.stored_method = r.string()?,
            other => return Err(Error::UnknownAttribute(other)),
        }
    }
}

/// Content-Length (every copy must agree) and whether the body is chunked.
fn body_framing(req: &mut ForwardRequest) -> Result<(), Error> {
    let mut te_chunked = false;
    for (n, v) in &req.headers {
        if n.eq_ignore_ascii_case(b"content-length") {
            let cl = parse_content_length(v)?;
            if req.content_length.is_some_and(|prev| prev != cl) {
                return Err(Error::BadContentLength);
            }
            req.content_length = Some(cl);
        } else if n.eq_ignore_ascii_case(b"transfer-encoding")
            && v.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked"))
        {
            te_chunked = true;
        }
    }
    req.chunked = te_chunked && req.content_length.is_none();
    Ok(())
}

/// A packet from the container to the web server, as [`decode_container_packet`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerPacket {
    /// SEND_HEADERS; coded names are given in their canonical case (`Content-Type`).
    SendHeaders {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: Bytes,
        /// Headers in order.
        headers: Vec<(Bytes, Bytes)>,
    },
    /// SEND_BODY_CHUNK's data.
    SendBodyChunk(Bytes),
    /// GET_BODY_CHUNK's requested size.
    GetBodyChunk(u16),
    /// END_RESPONSE.
    EndResponse {
        /// The reuse flag.
        reuse: bool,
    },
    /// CPONG_REPLY.
    CPong,
}

/// Reads one container packet from the front of `buf`, as a web server would (for tests).
///
/// Returns `None`, consuming nothing, when the packet is incomplete or malformed; otherwise
/// consumes it.
pub fn decode_container_packet(buf: &mut BytesMut) -> Option<ContainerPacket> {
    if buf.len() < 4 || buf[..2] != headers::MAGIC_FROM_CONTAINER {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if buf.len() < 4 + len || len == 0 {
        return None;
    }
    let mut r = Reader {
        data: Bytes::copy_from_slice(&buf[4..4 + len]),
        pos: 0,
    };
    let packet = container_packet(&mut r).ok()?;
    if !r.is_empty() {
        return None;
    }
    buf.advance(4 + len);
    Some(packet)
}

fn container_packet(r: &mut Reader) -> Result<ContainerPacket, Error> {
    Ok(match r.u8()? {
        headers::SEND_HEADERS => {
            let status = r.u16()?;
            let reason = r.string()?.unwrap_or_default();
            let n = r.u16()?;
            let mut hs = Vec::new();
            for _ in 0..n {
                let code = r.peek_u16()?;
                let name = if code >> 8 == 0xA0 {
                    r.pos += 2;
                    Bytes::from_static(
                        headers::response_header_name(code)
                            .ok_or(Error::UnknownHeaderCode(code))?
                            .as_bytes(),
                    )
                } else {
                    r.string()?.ok_or(Error::NullHeaderName)?
                };
                hs.push((name, r.string()?.unwrap_or_default()));
            }
            ContainerPacket::SendHeaders {
                status,
                reason,
                headers: hs,
            }
        }
        headers::SEND_BODY_CHUNK => {
            let n = usize::from(r.u16()?);
            let data = r
                .data
                .get(r.pos..r.pos + n)
                .ok_or(Error::Truncated)?
                .to_vec();
            r.pos += n;
            // The chunk is followed by one padding byte, 0x00.
            if r.u8()? != 0 {
                return Err(Error::MissingNul);
            }
            ContainerPacket::SendBodyChunk(Bytes::from(data))
        }
        headers::GET_BODY_CHUNK => ContainerPacket::GetBodyChunk(r.u16()?),
        headers::END_RESPONSE => ContainerPacket::EndResponse {
            reuse: r.u8()? != 0,
        },
        headers::CPONG_REPLY => ContainerPacket::CPong,
        t => return Err(Error::UnknownPacketType(t)),
    })
}
