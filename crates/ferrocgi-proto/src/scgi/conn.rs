//! The SCGI connection state machine.

use super::decode::{header_block, netstring_prefix};
use super::{Config, Error, Event};
use crate::Params;
use bytes::BytesMut;

/// Where the connection is in its single request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the header netstring.
    Head,
    /// Yielding body bytes; `remaining` more are due (0: `BodyEnd` is next).
    Body { remaining: u64 },
    /// `BodyEnd` was yielded; nothing more is decoded on this connection.
    Done,
    /// An error was returned; it is returned again on every later call.
    Failed(Error),
}

/// One SCGI connection, application side: bytes in, [`Event`]s out.
///
/// See the [module documentation](super) for the order of events.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    state: State,
}

impl Connection {
    /// A connection waiting for its request head.
    pub fn new(config: Config) -> Self {
        Connection {
            config,
            state: State::Head,
        }
    }

    /// Decodes the next event from `buf`, consuming its bytes.
    ///
    /// `Ok(None)` means more bytes are needed (or, after [`Event::BodyEnd`], that the
    /// request is complete; later bytes stay in `buf`). After an error, the same error is
    /// returned on every call.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Error> {
        let r = self.step(buf);
        if let Err(e) = r {
            self.state = State::Failed(e);
        }
        r
    }

    /// True once [`Event::BodyEnd`] was yielded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Error> {
        match self.state {
            State::Failed(e) => Err(e),
            State::Done => Ok(None),
            State::Head => {
                let Some((prefix, len)) = netstring_prefix(buf, &self.config)? else {
                    return Ok(None);
                };
                // prefix <= MAX_NETSTRING_DIGITS + 1 and len <= max_header_bytes: no overflow
                // for any sane config; checked for an insane one.
                let end = prefix.checked_add(len).ok_or(Error::HeadersTooLarge)?;
                if buf.len() <= end {
                    return Ok(None);
                }
                if buf[end] != b',' {
                    return Err(Error::MissingComma);
                }
                let (pairs, content_length) =
                    header_block(&buf[prefix..end], prefix, &self.config)?;
                let head = buf.split_to(end + 1).freeze();
                let params = Params::from_ranges(head, pairs);
                self.state = State::Body {
                    remaining: content_length,
                };
                Ok(Some(Event::Request {
                    params,
                    content_length,
                }))
            }
            State::Body { remaining: 0 } => {
                self.state = State::Done;
                Ok(Some(Event::BodyEnd))
            }
            State::Body { remaining } => {
                if buf.is_empty() {
                    return Ok(None);
                }
                // min() with a usize value: the result fits a usize.
                let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                let data = buf.split_to(n).freeze();
                self.state = State::Body {
                    remaining: remaining - n as u64,
                };
                Ok(Some(Event::Body(data)))
            }
        }
    }
}
