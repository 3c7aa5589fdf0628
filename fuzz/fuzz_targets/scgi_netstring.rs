#![no_main]
// placeholder: replaced by the codec author
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
