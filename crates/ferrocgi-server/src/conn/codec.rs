//! One face for the three protocol state machines, so a single connection loop serves them all.
//!
//! Each adapter maps its codec's events onto [`Decoded`] and its encoders onto the
//! [`ServerCodec`] methods. Request ids are FastCGI's; SCGI and AJP13 carry one request at a
//! time and use id 0.

use crate::handler::Protocol;
use bytes::{Bytes, BytesMut};
use ferrocgi_proto::{ajp13, fastcgi, scgi, Params, ProtoError, ResponseHead};

/// A decoded event, protocol-independent.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A request head is complete; its body follows as `Body`/`BodyEnd`.
    Request {
        id: u16,
        params: Params,
        declared: Option<u64>,
    },
    Body {
        id: u16,
        data: bytes::Bytes,
    },
    BodyEnd {
        id: u16,
    },
    /// The front end gave up on the request (FCGI_ABORT_REQUEST).
    Abort {
        id: u16,
    },
    /// The front end asked us to close (AJP SHUTDOWN: we close this connection, nothing more).
    Close,
}

/// What a connection loop needs from a protocol.
pub(crate) trait ServerCodec: Send + 'static {
    const PROTOCOL: Protocol;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ProtoError>;
    /// False once the peer has nothing more to send on this connection (SCGI after its body):
    /// what still arrives is not decoded, and the connection discards it.
    fn expects_input(&self) -> bool {
        true
    }
    /// Replies the codec queued by itself (management records, CPONG…).
    fn take_output(&mut self, _out: &mut BytesMut) {}
    /// A body chunk (or the request head) was handed to the application; AJP asks for more.
    fn body_delivered(&mut self, _id: u16, _out: &mut BytesMut) {}
    // The defaults of `head`, `body` and `end` write a CGI response on a plain byte stream,
    // one request per connection (SCGI, CGI); FastCGI and AJP13 frame theirs.
    fn head(
        &mut self,
        _id: u16,
        head: &ResponseHead,
        out: &mut BytesMut,
    ) -> Result<(), ProtoError> {
        head.encode_cgi(out);
        Ok(())
    }
    fn body(&mut self, _id: u16, data: &[u8], out: &mut BytesMut) {
        out.extend_from_slice(data);
    }
    /// [`ServerCodec::body`] for a large chunk, without copying it: the output becomes `segs`
    /// (in order) followed by `out`. By default it is copied.
    fn body_shared(&mut self, id: u16, data: Bytes, out: &mut BytesMut, _segs: &mut Vec<Bytes>) {
        self.body(id, &data, out);
    }
    /// Writes application error output if the protocol carries it; false: log it instead.
    fn stderr(&mut self, _id: u16, _data: &[u8], _out: &mut BytesMut) -> bool {
        false
    }
    /// Ends a response (`ok = false`: it is incomplete, and the protocol's end marker must
    /// not be sent). True: close after flushing.
    fn end(&mut self, _id: u16, _ok: bool, _out: &mut BytesMut) -> bool {
        true
    }
    /// Refuses a request because the server is at capacity. True: close after flushing.
    fn overloaded(&mut self, id: u16, out: &mut BytesMut) -> bool {
        let head = ResponseHead::new(503, "Service Unavailable")
            .header("Content-Type", "text/plain")
            .header("Retry-After", "1");
        if self.head(id, &head, out).is_ok() {
            self.body(id, b"server busy, try again\n", out);
        }
        self.end(id, true, out)
    }
    /// What to send before closing on a protocol error, if anything useful can be said.
    fn error_reply(&mut self, _err: &ProtoError, _out: &mut BytesMut) {}
    /// What the codec answered by itself since the last call, for the log.
    fn take_notices(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// True when the codec itself decided the connection must close once its replies are
    /// flushed (FastCGI: a request it refused by itself had no FCGI_KEEP_CONN).
    fn wants_close(&self) -> bool {
        false
    }
    /// Whether the request just decoded may be served; `Err(reason)` answers 403 and closes.
    fn admit(&mut self) -> Result<(), &'static str> {
        Ok(())
    }
}

/// CONTENT_LENGTH as a declared length: absent, empty or unparsable means none (the body then
/// runs to the end of the stream); "0" is a declared zero.
pub(crate) fn declared_length(params: &Params) -> Option<u64> {
    let v = params.get(b"CONTENT_LENGTH")?;
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// FastCGI adapter.
pub(crate) struct Fastcgi(pub fastcgi::Connection);

impl ServerCodec for Fastcgi {
    const PROTOCOL: Protocol = Protocol::Fastcgi;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ProtoError> {
        Ok(self.0.decode(buf)?.map(|ev| match ev {
            fastcgi::Event::Request { id, params, .. } => Decoded::Request {
                id,
                declared: declared_length(&params),
                params,
            },
            fastcgi::Event::Stdin { id, data } => Decoded::Body { id, data },
            fastcgi::Event::StdinEnd { id } => Decoded::BodyEnd { id },
            fastcgi::Event::Abort { id } => Decoded::Abort { id },
        }))
    }

    fn take_output(&mut self, out: &mut BytesMut) {
        if self.0.has_output() {
            self.0.take_output(out);
        }
    }

    fn wants_close(&self) -> bool {
        self.0.should_close() && self.0.active_requests() == 0
    }

    fn take_notices(&mut self) -> Vec<String> {
        let (notices, dropped) = self.0.take_notices();
        let mut lines: Vec<String> = notices.iter().map(ToString::to_string).collect();
        if dropped > 0 {
            lines.push(format!("{dropped} more such records not logged"));
        }
        lines
    }

    fn head(&mut self, id: u16, head: &ResponseHead, out: &mut BytesMut) -> Result<(), ProtoError> {
        let mut cgi = BytesMut::with_capacity(head.cgi_len());
        head.encode_cgi(&mut cgi);
        self.0.write_stdout(id, &cgi, out);
        Ok(())
    }

    fn body(&mut self, id: u16, data: &[u8], out: &mut BytesMut) {
        self.0.write_stdout(id, data, out);
    }

    fn body_shared(&mut self, id: u16, data: Bytes, out: &mut BytesMut, segs: &mut Vec<Bytes>) {
        self.0.write_stdout_shared(id, &data, out, segs);
    }

    fn stderr(&mut self, id: u16, data: &[u8], out: &mut BytesMut) -> bool {
        self.0.write_stderr(id, data, out);
        true
    }

    fn end(&mut self, id: u16, ok: bool, out: &mut BytesMut) -> bool {
        if !ok {
            // An incomplete response must not look complete. nginx and Apache ignore appStatus,
            // but a connection closed before FCGI_END_REQUEST makes them cut the client's
            // response ("upstream prematurely closed").
            return true;
        }
        self.0
            .end_request(id, 0, fastcgi::ProtocolStatus::RequestComplete, out)
    }

    fn overloaded(&mut self, id: u16, out: &mut BytesMut) -> bool {
        self.0
            .end_request(id, 0, fastcgi::ProtocolStatus::Overloaded, out)
    }
}

/// SCGI adapter: one request per connection, closed after the response.
pub(crate) struct Scgi(pub scgi::Connection);

impl ServerCodec for Scgi {
    const PROTOCOL: Protocol = Protocol::Scgi;

    fn expects_input(&self) -> bool {
        !self.0.is_done()
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ProtoError> {
        Ok(self.0.decode(buf)?.map(|ev| match ev {
            scgi::Event::Request {
                params,
                content_length,
            } => Decoded::Request {
                id: 0,
                params,
                declared: Some(content_length),
            },
            scgi::Event::Body(data) => Decoded::Body { id: 0, data },
            scgi::Event::BodyEnd => Decoded::BodyEnd { id: 0 },
        }))
    }

    fn error_reply(&mut self, err: &ProtoError, out: &mut BytesMut) {
        // The front end relays this to the client, which then sees a 400 instead of a 502.
        if let Some(head) = error_answer(err) {
            head.encode_cgi(out);
            out.extend_from_slice(b"malformed SCGI request\n");
        }
    }
}

/// AJP13 adapter.
pub(crate) struct Ajp13 {
    pub conn: ajp13::Connection,
    /// The shared secret the front end must send (attribute 0x0C), if configured.
    pub secret: Option<bytes::Bytes>,
    /// Set when the current request was refused for a wrong secret.
    pub refused: bool,
}

/// Compares the secret a request carries with the configured one in time that does not
/// depend on where they differ (`subtle`: a timing-safe comparison is easy to get subtly
/// wrong by hand; the crate is RustCrypto's, well kept).
fn secret_matches(got: Option<&[u8]>, want: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    got.is_some_and(|got| bool::from(got.ct_eq(want)))
}

impl ServerCodec for Ajp13 {
    const PROTOCOL: Protocol = Protocol::Ajp13;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ProtoError> {
        Ok(self.conn.decode(buf)?.map(|ev| match ev {
            ajp13::Event::Request(fr) => {
                self.refused = match &self.secret {
                    Some(want) => !secret_matches(fr.secret.as_deref(), want),
                    None => false,
                };
                let dropped = fr.underscore_headers();
                if dropped > 0 {
                    tracing::debug!(
                        dropped,
                        "AJP: left out request headers whose names hold '_'"
                    );
                }
                Decoded::Request {
                    id: 0,
                    declared: fr.content_length,
                    params: fr.to_params(),
                }
            }
            ajp13::Event::Body(data) => Decoded::Body { id: 0, data },
            ajp13::Event::BodyEnd => Decoded::BodyEnd { id: 0 },
            ajp13::Event::Shutdown => Decoded::Close,
        }))
    }

    fn take_output(&mut self, out: &mut BytesMut) {
        if self.conn.has_output() {
            self.conn.take_output(out);
        }
    }

    fn body_delivered(&mut self, _id: u16, out: &mut BytesMut) {
        self.conn.request_body_chunk(out);
    }

    fn admit(&mut self) -> Result<(), &'static str> {
        if self.refused {
            Err("wrong or missing AJP secret")
        } else {
            Ok(())
        }
    }

    fn head(
        &mut self,
        _id: u16,
        head: &ResponseHead,
        out: &mut BytesMut,
    ) -> Result<(), ProtoError> {
        Ok(self.conn.send_headers(head, out)?)
    }

    fn body(&mut self, _id: u16, data: &[u8], out: &mut BytesMut) {
        self.conn.send_body(data, out);
    }

    fn end(&mut self, _id: u16, ok: bool, out: &mut BytesMut) -> bool {
        if !ok {
            // No END_RESPONSE: the front end sees the connection drop mid-response and fails
            // the client's response instead of completing it.
            return true;
        }
        self.conn.end_response(true, out);
        false
    }

    fn error_reply(&mut self, err: &ProtoError, out: &mut BytesMut) {
        // A request the front end is waiting on gets an HTTP error it can relay; a stream that
        // is out of sync (bad magic, …) can only be closed.
        if let Some(head) = error_answer(err) {
            if self.conn.send_headers(&head, out).is_ok() {
                self.conn.end_response(false, out);
            }
        }
    }
}

/// The one mapping from a codec error to the answer a request gets before its connection
/// closes (each codec encodes it its own way); `None`: the stream is out of step, just close.
/// The FastCGI adapter keeps the default `error_reply` (a close, as it always did), so its
/// codec's hints are not sent.
fn error_answer(err: &ProtoError) -> Option<ResponseHead> {
    err.status_hint().map(error_response)
}

/// The response for a request the server refuses because of a protocol error.
fn error_response(status: u16) -> ResponseHead {
    let reason = match status {
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    ResponseHead::new(status, reason).header("Content-Type", "text/plain")
}

/// Plain CGI: the request head is the environment, the body is stdin (CONTENT_LENGTH bytes),
/// the response is a CGI response on stdout.
pub(crate) struct Cgi {
    params: Option<Params>,
    declared: Option<u64>,
    remaining: u64,
    ended: bool,
}

impl Cgi {
    pub(crate) fn new(params: Params) -> Self {
        let declared = declared_length(&params);
        Cgi {
            params: Some(params),
            declared,
            remaining: declared.unwrap_or(0),
            ended: false,
        }
    }
}

impl ServerCodec for Cgi {
    const PROTOCOL: Protocol = Protocol::Cgi;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ProtoError> {
        if let Some(params) = self.params.take() {
            return Ok(Some(Decoded::Request {
                id: 0,
                params,
                declared: self.declared,
            }));
        }
        if self.remaining == 0 {
            if self.ended {
                return Ok(None);
            }
            self.ended = true;
            return Ok(Some(Decoded::BodyEnd { id: 0 }));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.remaining -= n as u64;
        Ok(Some(Decoded::Body {
            id: 0,
            data: buf.split_to(n).freeze(),
        }))
    }
}
