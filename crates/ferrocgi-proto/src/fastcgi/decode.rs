//! Record framing: cutting whole records off the front of the read buffer.
//!
//! A record is only taken once all of it (header, content, padding) is in the buffer, so a
//! partial record stays put and the caller simply appends more bytes. The largest record is
//! 8 + 65535 + 255 bytes, so waiting for a whole one never needs more than ~64 KiB of buffer,
//! whatever the peer claims: nothing here allocates by a peer-supplied length.

use super::record::{Header, FCGI_HEADER_LEN, FCGI_VERSION_1};
use super::Error;
use bytes::{Buf, BytesMut};

/// Takes the next whole record off the front of `buf`.
///
/// Returns the header and the content (a zero-copy split of `buf`; the padding is dropped),
/// `Ok(None)` when the record is not complete yet (nothing consumed), or
/// [`Error::UnsupportedVersion`] as soon as a header with a version other than 1 is complete.
pub fn next_record(buf: &mut BytesMut) -> Result<Option<(Header, BytesMut)>, Error> {
    let Some(head) = buf.first_chunk::<FCGI_HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::parse(head);
    if header.version != FCGI_VERSION_1 {
        return Err(Error::UnsupportedVersion(header.version));
    }
    let total = header.record_len();
    if buf.len() < total {
        // Expected runtime condition, not an error: the rest of the record is still in flight.
        // `total` is at most 65798, so this hint is bounded whatever the header says.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(FCGI_HEADER_LEN);
    let content = buf.split_to(usize::from(header.content_length));
    buf.advance(usize::from(header.padding_length));
    Ok(Some((header, content)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_whole_record() {
        let rec = [1u8, 5, 0, 1, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0, 9];
        for cut in 0..rec.len() - 1 {
            let mut buf = BytesMut::from(&rec[..cut]);
            assert_eq!(next_record(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed at {cut}");
        }
        let mut buf = BytesMut::from(&rec[..]);
        let (h, content) = next_record(&mut buf).unwrap().unwrap();
        assert_eq!(h.request_id, 1);
        assert_eq!(&content[..], b"abc");
        assert_eq!(&buf[..], &[9]);
    }

    #[test]
    fn bad_version_is_seen_at_the_header() {
        let mut buf = BytesMut::from(&[2u8, 1, 0, 1, 0xff, 0xff, 0, 0][..]);
        assert_eq!(next_record(&mut buf), Err(Error::UnsupportedVersion(2)));
    }
}
