#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pake::fuzzing::dockerfile(data));
