//! Invariant: any bytes either decode as name-value pairs or give a `PairsError`; never a panic.
//! A decoded block re-encodes (with minimal lengths) to at most its own size and decodes back to
//! the same pairs; and the same block sent as a PARAMS stream cut into two records at an
//! arbitrary point (so a pair may straddle them) gives the same params through a `Connection`,
//! or the matching `fastcgi::Error`.
#![no_main]

use bytes::{Bytes, BytesMut};
use ferrocgi_proto::fastcgi::params::{decode_pairs, encode_pair, PairsError};
use ferrocgi_proto::fastcgi::{encode, record, Config, Connection, Error, Event};

const MAX_PAIRS: usize = 64;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&cut, block)) = data.split_first() else {
        return;
    };
    let decoded = decode_pairs(Bytes::copy_from_slice(block), MAX_PAIRS);

    if let Ok(params) = &decoded {
        let mut again = BytesMut::new();
        for (n, v) in params.iter() {
            encode_pair(n, v, &mut again);
        }
        assert!(again.len() <= block.len());
        let back = decode_pairs(again.freeze(), MAX_PAIRS).expect("re-encoded pairs decode");
        assert!(back.iter().eq(params.iter()));
    }

    // The same block through the state machine, split across two PARAMS records.
    let mut wire = BytesMut::new();
    encode::begin_request(1, record::FCGI_RESPONDER, true, &mut wire);
    let at = usize::from(cut).min(block.len());
    encode::stream(record::FCGI_PARAMS, 1, &block[..at], &mut wire);
    encode::stream(record::FCGI_PARAMS, 1, &block[at..], &mut wire);
    encode::record(record::FCGI_PARAMS, 1, &[], &mut wire);
    let mut conn = Connection::new(Config {
        max_params_pairs: MAX_PAIRS,
        ..Config::default()
    });
    let got = conn.decode(&mut wire);
    match (&decoded, got) {
        (Ok(params), Ok(Some(Event::Request { params: p, .. }))) => {
            assert!(p.iter().eq(params.iter()));
        }
        (Err(PairsError::Truncated), Err(Error::MalformedParams(1))) => {}
        (Err(PairsError::TooMany), Err(Error::TooManyParams { id: 1, .. })) => {}
        // Over max_params_bytes: only possible for blocks larger than the default limit.
        (_, Err(Error::ParamsTooLarge { .. })) => {
            assert!(block.len() > Config::default().max_params_bytes)
        }
        (d, g) => panic!("decode_pairs gave {d:?} but the connection gave {g:?}"),
    }
});
