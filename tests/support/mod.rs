//! What the integration tests share. Each test binary compiles it whole and uses a part.
#![allow(dead_code)]

pub mod fake_api;
