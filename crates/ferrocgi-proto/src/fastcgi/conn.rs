//! The per-connection state machine: which request ids are active, where each one is in its
//! streams, and the answers the codec owes the web server.
//!
//! Request life cycle (one entry of `Connection::requests`):
//!
//! ```text
//! BEGIN_REQUEST ──▶ Params ──(empty PARAMS: Event::Request)──▶ Stdin ──(empty STDIN: StdinEnd)──▶ StdinDone
//!                     │                                          │                                  │
//!                     └─ ABORT: codec sends END_REQUEST          └──── ABORT: Event::Abort ─────────┘
//!                                                                 end_request() removes the entry from any state
//! ```

use super::decode::next_record;
use super::encode;
use super::limits;
use super::params::{decode_pairs, PairRanges, PairsError};
use super::record::*;
use super::Error;
use crate::Params;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;

/// Settings of a [`Connection`].
#[derive(Debug, Clone)]
pub struct Config {
    /// `FCGI_MAX_CONNS` answered to `FCGI_GET_VALUES` (the server's connection cap).
    pub max_conns: u32,
    /// `FCGI_MAX_REQS` answered to `FCGI_GET_VALUES`, and the most requests active at once on
    /// this connection when `multiplex` is on (beyond: `FCGI_OVERLOADED`).
    pub max_reqs: u32,
    /// Accept several concurrent requests on one connection. When off (the default, and what
    /// every tested web server expects: they always use request id 1), a second concurrent
    /// `FCGI_BEGIN_REQUEST` is refused with `FCGI_CANT_MPX_CONN`. Answered as
    /// `FCGI_MPXS_CONNS`.
    pub multiplex: bool,
    /// Most PARAMS bytes buffered on the connection ([`limits::MAX_PARAMS_BYTES`]).
    pub max_params_bytes: usize,
    /// Most name/value pairs per request ([`limits::MAX_PARAMS_PAIRS`]).
    pub max_params_pairs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_conns: limits::DEFAULT_MAX_CONNS,
            max_reqs: limits::DEFAULT_MAX_REQS,
            multiplex: false,
            max_params_bytes: limits::MAX_PARAMS_BYTES,
            max_params_pairs: limits::MAX_PARAMS_PAIRS,
        }
    }
}

/// What the web server asked for, one record (or PARAMS stream) at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A Responder request whose PARAMS stream is complete. Its body follows as
    /// [`Event::Stdin`] events, ended by [`Event::StdinEnd`].
    Request {
        /// The request id, to pass to the response writers.
        id: u16,
        /// `FCGI_KEEP_CONN`: the web server keeps the connection open after the request.
        keep_conn: bool,
        /// The CGI variables, in the order sent, sharing the accumulated PARAMS bytes.
        params: Params,
    },
    /// A piece of the request body (never empty; a zero-copy slice of the read buffer).
    Stdin {
        /// The request id.
        id: u16,
        /// The body bytes, padding removed.
        data: Bytes,
    },
    /// The empty `FCGI_STDIN` record: the body is complete.
    StdinEnd {
        /// The request id.
        id: u16,
    },
    /// `FCGI_ABORT_REQUEST` for a request already handed out (the client went away). The
    /// application should stop and call [`Connection::end_request`]; at most one per request.
    Abort {
        /// The request id.
        id: u16,
    },
}

/// Where a request is in its input streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accumulating PARAMS; not yet known to the application.
    Params,
    /// Handed out; body in progress.
    Stdin,
    /// Body complete.
    StdinDone,
}

#[derive(Debug)]
struct Request {
    keep_conn: bool,
    phase: Phase,
    /// PARAMS content so far. The first record's content is a zero-copy split of the read
    /// buffer; later ones are appended (copied).
    params: BytesMut,
    stderr_used: bool,
    aborted: bool,
    /// Cherokee's chunked bodies (see [`Dechunk`]): `Some` when the params said
    /// `CONTENT_TRANSFER_ENCODING=chunked` and gave no `CONTENT_LENGTH`.
    dechunk: Option<Dechunk>,
}

/// Something the codec answered by itself that the operator should hear about (the codec does
/// no logging; the server drains these with [`Connection::take_notices`] and logs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A BEGIN_REQUEST for a role other than RESPONDER, answered FCGI_UNKNOWN_ROLE.
    UnknownRole {
        /// The request id.
        id: u16,
        /// The role asked for (2 = AUTHORIZER, 3 = FILTER).
        role: u16,
    },
    /// A second request while multiplexing is off, answered FCGI_CANT_MPX_CONN.
    CantMpxConn {
        /// The refused request id.
        id: u16,
    },
    /// A request past `max_reqs`, answered FCGI_OVERLOADED.
    Overloaded {
        /// The refused request id.
        id: u16,
    },
    /// A record of an unknown type, answered FCGI_UNKNOWN_TYPE.
    UnknownType {
        /// The record type.
        record_type: u8,
    },
    /// An empty `FCGI_STDIN` after the end of a request's body, ignored (Cherokee ends its
    /// chunked bodies twice).
    StdinEndRepeated {
        /// The request id.
        id: u16,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::UnknownRole { id, role } => write!(
                f,
                "request {id}: unknown role {role} (only RESPONDER is served); answered FCGI_UNKNOWN_ROLE"
            ),
            Notice::CantMpxConn { id } => write!(
                f,
                "request {id}: a second request on a connection without multiplexing; answered FCGI_CANT_MPX_CONN"
            ),
            Notice::Overloaded { id } => {
                write!(f, "request {id}: too many requests on the connection; answered FCGI_OVERLOADED")
            }
            Notice::UnknownType { record_type } => write!(
                f,
                "unknown record type {record_type}; answered FCGI_UNKNOWN_TYPE"
            ),
            Notice::StdinEndRepeated { id } => write!(
                f,
                "a second empty FCGI_STDIN for request {id} after its body ended; ignored"
            ),
        }
    }
}

/// Notices kept between two [`Connection::take_notices`] calls; more are counted, not kept, so
/// a peer cannot grow the queue.
const MAX_NOTICES: usize = 16;

/// The FastCGI state machine of one connection (application side). See the
/// [module documentation](super) for how it is driven.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    requests: HashMap<u16, Request>,
    /// Sum of `params.len()` over requests in [`Phase::Params`].
    pending_params: usize,
    /// Records the codec owes the web server.
    output: BytesMut,
    /// Sticky: the first protocol error.
    failed: Option<Error>,
    /// A request without `FCGI_KEEP_CONN` has ended.
    close: bool,
    /// What the codec answered by itself since the last `take_notices`.
    notices: Vec<Notice>,
    /// Notices dropped because the queue was full.
    notices_dropped: usize,
    /// An event decoded with the one before it (a de-chunked body's last bytes and its end),
    /// handed out by the next `decode`.
    queued: Option<Event>,
}

impl Connection {
    /// A connection in its initial state: no active request.
    pub fn new(config: Config) -> Self {
        Connection {
            config,
            requests: HashMap::new(),
            pending_params: 0,
            output: BytesMut::new(),
            failed: None,
            close: false,
            notices: Vec::new(),
            notices_dropped: 0,
            queued: None,
        }
    }

    /// Takes the notices queued since the last call, and how many more were dropped.
    pub fn take_notices(&mut self) -> (Vec<Notice>, usize) {
        let dropped = std::mem::take(&mut self.notices_dropped);
        (std::mem::take(&mut self.notices), dropped)
    }

    fn notice(&mut self, n: Notice) {
        if self.notices.len() < MAX_NOTICES {
            self.notices.push(n);
        } else {
            self.notices_dropped += 1;
        }
    }

    /// The settings this connection was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Consumes whole records from the front of `buf` until one yields an [`Event`].
    ///
    /// `Ok(None)`: more bytes are needed; any partial record is left in `buf` (which may have
    /// been `reserve`d for the rest of it, never more than one record, ~64 KiB). Records the
    /// codec handles itself (management records, refused requests, records for inactive ids)
    /// produce no event; their answers are queued, see [`Connection::has_output`].
    ///
    /// NOTE: answers are queued for every such record in `buf`, up to ~2 bytes of output per
    /// byte of input (an 8-byte unknown record earns a 16-byte `FCGI_UNKNOWN_TYPE`); the read
    /// buffer's own bound therefore bounds the queue. Flush after each batch of decodes.
    ///
    /// `Err(e)`: the peer broke the protocol, see [`Error`]; every later call returns `e` again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if let Some(event) = self.queued.take() {
            return Ok(Some(event));
        }
        loop {
            if buf.starts_with(&[0; 8]) && self.awaiting_chunked_body() {
                // Cherokee writes 8 zero bytes (no record: version 0) before some chunked
                // bodies; they carry nothing.
                bytes::Buf::advance(buf, 8);
                continue;
            }
            let step = match next_record(buf) {
                Ok(Some((header, content))) => self.on_record(header, content),
                Ok(None) => return Ok(None),
                Err(e) => Err(e),
            };
            match step {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => continue,
                Err(e) => {
                    self.failed = Some(e);
                    return Err(e);
                }
            }
        }
    }

    /// A request's de-chunked body is still to come (Cherokee).
    fn awaiting_chunked_body(&self) -> bool {
        self.requests
            .values()
            .any(|r| r.dechunk.as_ref().is_some_and(|d| !d.done()))
    }

    /// True when the codec has queued records for the web server.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Appends the queued records to `out` and empties the queue.
    pub fn take_output(&mut self, out: &mut BytesMut) {
        if out.is_empty() {
            // Hand over the whole buffer instead of copying it.
            std::mem::swap(out, &mut self.output);
        } else {
            out.extend_from_slice(&self.output);
            self.output.clear();
        }
    }

    /// Appends `data` to request `id`'s response as `FCGI_STDOUT` records of at most 65535
    /// content bytes, each padded to 8. Writes nothing for empty data (an empty `FCGI_STDOUT`
    /// is the terminator, written by [`Connection::end_request`]) or when `id` is not active.
    pub fn write_stdout(&mut self, id: u16, data: &[u8], out: &mut BytesMut) {
        if self.requests.contains_key(&id) {
            encode::stream(FCGI_STDOUT, id, data, out);
        }
    }

    /// [`Connection::write_stdout`] without copying `data`: see [`encode::stream_shared`].
    pub fn write_stdout_shared(
        &mut self,
        id: u16,
        data: &bytes::Bytes,
        out: &mut BytesMut,
        segs: &mut Vec<bytes::Bytes>,
    ) {
        if self.requests.contains_key(&id) {
            encode::stream_shared(FCGI_STDOUT, id, data, out, segs);
        }
    }

    /// Like [`Connection::write_stdout`], for `FCGI_STDERR`; the request is remembered to
    /// need an empty `FCGI_STDERR` terminator at its end.
    pub fn write_stderr(&mut self, id: u16, data: &[u8], out: &mut BytesMut) {
        if let Some(req) = self.requests.get_mut(&id) {
            if !data.is_empty() {
                req.stderr_used = true;
                encode::stream(FCGI_STDERR, id, data, out);
            }
        }
    }

    /// Ends request `id`: appends the empty `FCGI_STDOUT` (and the empty `FCGI_STDERR` if
    /// stderr was written), then `FCGI_END_REQUEST` with `app_status` and `status`, and
    /// forgets the request (later records for its id are ignored; the id may begin again).
    ///
    /// Returns true when the connection must be closed once `out` is flushed: the request did
    /// not set `FCGI_KEEP_CONN`. Writes nothing and returns false when `id` is not active.
    pub fn end_request(
        &mut self,
        id: u16,
        app_status: u32,
        status: ProtocolStatus,
        out: &mut BytesMut,
    ) -> bool {
        let Some(req) = self.forget(id) else {
            return false;
        };
        encode::record(FCGI_STDOUT, id, &[], out);
        if req.stderr_used {
            encode::record(FCGI_STDERR, id, &[], out);
        }
        encode::end_request(id, app_status, status, out);
        if !req.keep_conn {
            self.close = true;
        }
        !req.keep_conn
    }

    /// Number of active requests: begun and not yet ended, including those whose PARAMS are
    /// still arriving (not yet handed out as [`Event::Request`]).
    pub fn active_requests(&self) -> usize {
        self.requests.len()
    }

    /// True when `id` is an active request.
    pub fn is_active(&self, id: u16) -> bool {
        self.requests.contains_key(&id)
    }

    /// True once a request without `FCGI_KEEP_CONN` has ended, whether through
    /// [`Connection::end_request`] (which also returned true) or refused by the codec itself
    /// (unknown role, `FCGI_CANT_MPX_CONN`, `FCGI_OVERLOADED`, aborted before its params
    /// were complete). The server should close the connection after flushing, once
    /// [`Connection::active_requests`] is 0.
    ///
    /// # Background
    /// FastCGI 1.0, §5.1: "If this bit is zero, the application closes the connection after
    /// responding to this request."
    pub fn should_close(&self) -> bool {
        self.close
    }

    /// Removes a request, keeping the pending-params count right.
    fn forget(&mut self, id: u16) -> Option<Request> {
        let req = self.requests.remove(&id)?;
        if req.phase == Phase::Params {
            self.pending_params = self.pending_params.saturating_sub(req.params.len());
        }
        Some(req)
    }

    /// The codec answers a request on its own (refused, or aborted before the application knew
    /// of it).
    fn refuse(&mut self, id: u16, keep_conn: bool, status: ProtocolStatus) {
        encode::end_request(id, 0, status, &mut self.output);
        if !keep_conn {
            self.close = true;
        }
    }

    fn on_record(&mut self, h: Header, content: BytesMut) -> Result<Option<Event>, Error> {
        let id = h.request_id;
        let t = h.record_type;
        if id == FCGI_NULL_REQUEST_ID {
            self.on_management(t, &content)?;
            return Ok(None);
        }
        if t == 0 || t > FCGI_MAXTYPE {
            // The spec only requires this answer for management records, but an unknown type
            // is unknown whatever its id; answering lets the peer log something useful.
            encode::unknown_type(t, &mut self.output);
            self.notice(Notice::UnknownType { record_type: t });
            return Ok(None);
        }
        if t == FCGI_BEGIN_REQUEST {
            return self.on_begin(id, &content);
        }
        let Some(req) = self.requests.get_mut(&id) else {
            // Expected runtime condition: the tail of a refused or already ended request.
            return Ok(None);
        };
        match t {
            FCGI_PARAMS => params_record(req, &mut self.pending_params, &self.config, id, content),
            FCGI_STDIN if req.dechunk.is_some() => {
                chunked_stdin(req, id, &content, &mut self.queued)
            }
            FCGI_STDIN if req.phase == Phase::StdinDone && content.is_empty() => {
                self.notice(Notice::StdinEndRepeated { id });
                Ok(None)
            }
            FCGI_STDIN => Ok(Some(stdin_record(req, id, content)?)),
            FCGI_ABORT_REQUEST => {
                // The spec gives ABORT_REQUEST no content; any content is ignored.
                if req.phase == Phase::Params {
                    // The application never saw this request: answer for it.
                    let keep_conn = req.keep_conn;
                    self.forget(id);
                    self.refuse(id, keep_conn, ProtocolStatus::RequestComplete);
                    Ok(None)
                } else if req.aborted {
                    Ok(None)
                } else {
                    req.aborted = true;
                    Ok(Some(Event::Abort { id }))
                }
            }
            _ => Err(Error::UnexpectedRecord { record_type: t, id }),
        }
    }

    fn on_begin(&mut self, id: u16, content: &[u8]) -> Result<Option<Event>, Error> {
        let body: &[u8; 8] = content
            .try_into()
            .map_err(|_| Error::BeginRequestBadLength {
                id,
                // content comes from a record, so its length fits in u16.
                len: u16::try_from(content.len()).unwrap_or(u16::MAX),
            })?;
        if self.requests.contains_key(&id) {
            return Err(Error::DuplicateBeginRequest(id));
        }
        let role = u16::from_be_bytes([body[0], body[1]]);
        let keep_conn = body[2] & FCGI_KEEP_CONN != 0;
        let max_reqs = usize::try_from(self.config.max_reqs).unwrap_or(usize::MAX);
        if role != FCGI_RESPONDER {
            // AUTHORIZER, FILTER and anything unknown.
            self.refuse(id, keep_conn, ProtocolStatus::UnknownRole);
            self.notice(Notice::UnknownRole { id, role });
        } else if !self.config.multiplex && !self.requests.is_empty() {
            self.refuse(id, keep_conn, ProtocolStatus::CantMpxConn);
            self.notice(Notice::CantMpxConn { id });
        } else if self.requests.len() >= max_reqs {
            self.refuse(id, keep_conn, ProtocolStatus::Overloaded);
            self.notice(Notice::Overloaded { id });
        } else {
            self.requests.insert(
                id,
                Request {
                    keep_conn,
                    phase: Phase::Params,
                    params: BytesMut::new(),
                    stderr_used: false,
                    aborted: false,
                    dechunk: None,
                },
            );
        }
        Ok(None)
    }

    fn on_management(&mut self, record_type: u8, content: &[u8]) -> Result<(), Error> {
        if record_type != FCGI_GET_VALUES {
            encode::unknown_type(record_type, &mut self.output);
            self.notice(Notice::UnknownType { record_type });
            return Ok(());
        }
        // Each known variable is answered once, in the order first asked, which keeps the
        // answer small whatever the peer repeats.
        let mut asked: Vec<&'static [u8]> = Vec::with_capacity(3);
        for pair in PairRanges::new(content) {
            let (name, _value) =
                pair.map_err(|_| Error::ManagementRecordBadLength { record_type })?;
            let name = &content[name];
            for known in [FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS] {
                if name == known && !asked.contains(&known) {
                    asked.push(known);
                }
            }
        }
        let conns = self.config.max_conns.to_string();
        let reqs = self.config.max_reqs.to_string();
        let mpxs: &[u8] = if self.config.multiplex { b"1" } else { b"0" };
        let answers: Vec<(&[u8], &[u8])> = asked
            .iter()
            .map(|&name| {
                let value: &[u8] = if name == FCGI_MAX_CONNS {
                    conns.as_bytes()
                } else if name == FCGI_MAX_REQS {
                    reqs.as_bytes()
                } else {
                    mpxs
                };
                (name, value)
            })
            .collect();
        encode::get_values_result(&answers, &mut self.output);
        Ok(())
    }
}

/// A PARAMS record: one more piece of the params (bounded by `max_params_bytes` over all
/// requests of the connection), or the empty record that ends them and makes the request.
fn params_record(
    req: &mut Request,
    pending_params: &mut usize,
    config: &Config,
    id: u16,
    content: BytesMut,
) -> Result<Option<Event>, Error> {
    if req.phase != Phase::Params {
        return Err(Error::ParamsAfterEnd(id));
    }
    if content.is_empty() {
        let block = std::mem::take(&mut req.params);
        req.phase = Phase::Stdin;
        *pending_params = pending_params.saturating_sub(block.len());
        let params = match decode_pairs(block.freeze(), config.max_params_pairs) {
            Ok(p) => p,
            Err(PairsError::Truncated) => return Err(Error::MalformedParams(id)),
            Err(PairsError::TooMany) => {
                let limit = config.max_params_pairs;
                return Err(Error::TooManyParams { id, limit });
            }
        };
        if is_chunked_without_length(&params) {
            req.dechunk = Some(Dechunk::default());
        }
        let keep_conn = req.keep_conn;
        return Ok(Some(Event::Request {
            id,
            keep_conn,
            params,
        }));
    }
    let limit = config.max_params_bytes;
    match pending_params.checked_add(content.len()) {
        Some(total) if total <= limit => *pending_params = total,
        _ => return Err(Error::ParamsTooLarge { id, limit }),
    }
    if req.params.is_empty() {
        // Zero-copy for the usual single PARAMS record.
        req.params = content;
    } else {
        req.params.extend_from_slice(&content);
    }
    Ok(None)
}

/// Cherokee's params for a chunked request body: `CONTENT_TRANSFER_ENCODING=chunked` and no
/// `CONTENT_LENGTH`.
fn is_chunked_without_length(params: &Params) -> bool {
    params.get(b"CONTENT_LENGTH").is_none()
        && params
            .get(b"CONTENT_TRANSFER_ENCODING")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"))
}

/// A STDIN record of a request whose body comes chunk-encoded (Cherokee): the empty record
/// before any body byte is not the end; the body's bytes come out de-chunked; its last chunk
/// (or an empty record after body bytes) ends it; empty records after the end are ignored.
fn chunked_stdin(
    req: &mut Request,
    id: u16,
    content: &[u8],
    queued: &mut Option<Event>,
) -> Result<Option<Event>, Error> {
    let d = req.dechunk.as_mut().expect("guarded by the caller");
    if req.phase == Phase::StdinDone {
        return match content.is_empty() {
            true => Ok(None),
            false => Err(Error::StdinAfterEnd(id)),
        };
    }
    if content.is_empty() {
        if !d.started() {
            return Ok(None);
        }
        req.phase = Phase::StdinDone;
        return Ok(Some(Event::StdinEnd { id }));
    }
    let mut data = BytesMut::new();
    d.feed(content, &mut data)
        .map_err(|()| Error::MalformedChunkedBody(id))?;
    let end = d.done().then(|| {
        req.phase = Phase::StdinDone;
        Event::StdinEnd { id }
    });
    if data.is_empty() {
        return Ok(end);
    }
    *queued = end;
    Ok(Some(Event::Stdin {
        id,
        data: data.freeze(),
    }))
}

/// Decodes an HTTP/1.1 chunked body that arrives inside STDIN records, across record
/// boundaries (Cherokee forwards chunked request bodies still encoded). Written here rather
/// than taken from an HTTP crate: it is a few states over bytes already framed by FastCGI,
/// and the codec takes no dependency for it.
#[derive(Debug, Default)]
struct Dechunk {
    state: ChunkState,
    /// The size line so far (bounded by [`MAX_CHUNK_LINE`]).
    line: Vec<u8>,
    fed: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a size line (`1a;ext\r\n`).
    #[default]
    Size,
    /// This many data bytes to go.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The last chunk came; anything after it (trailers, the final CRLF) is ignored.
    Done,
}

/// Longest chunk-size line accepted (hex size and extensions).
const MAX_CHUNK_LINE: usize = 256;

impl Dechunk {
    fn started(&self) -> bool {
        self.fed
    }

    fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Appends the data bytes in `input` to `out`; `Err` on a malformed encoding.
    fn feed(&mut self, mut input: &[u8], out: &mut BytesMut) -> Result<(), ()> {
        self.fed = true;
        while let Some((&b, rest)) = input.split_first() {
            match self.state {
                ChunkState::Done => return Ok(()),
                ChunkState::Data(n) => {
                    let take = input.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    continue;
                }
                ChunkState::DataEnd => match b {
                    b'\r' => {}
                    b'\n' => self.state = ChunkState::Size,
                    _ => return Err(()),
                },
                ChunkState::Size if b == b'\n' => self.end_size_line()?,
                ChunkState::Size if self.line.len() < MAX_CHUNK_LINE => self.line.push(b),
                ChunkState::Size => return Err(()),
            }
            input = rest;
        }
        Ok(())
    }

    fn end_size_line(&mut self) -> Result<(), ()> {
        let line = std::mem::take(&mut self.line);
        let size = line
            .split(|&c| c == b';' || c == b'\r')
            .next()
            .unwrap_or_default();
        let size = std::str::from_utf8(size).map_err(drop)?.trim();
        let n = u64::from_str_radix(size, 16).map_err(drop)?;
        self.state = if n == 0 {
            ChunkState::Done
        } else {
            ChunkState::Data(n)
        };
        Ok(())
    }
}

/// A STDIN record: body bytes, or the empty record that ends the body.
fn stdin_record(req: &mut Request, id: u16, content: BytesMut) -> Result<Event, Error> {
    match req.phase {
        Phase::Params => Err(Error::StdinBeforeParams(id)),
        Phase::StdinDone => Err(Error::StdinAfterEnd(id)),
        Phase::Stdin if content.is_empty() => {
            req.phase = Phase::StdinDone;
            Ok(Event::StdinEnd { id })
        }
        Phase::Stdin => Ok(Event::Stdin {
            id,
            data: content.freeze(),
        }),
    }
}

#[cfg(test)]
mod tests;
