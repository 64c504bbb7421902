//! Integration tests: the real binary, real HTTP, a temporary data dir.

mod harness;

mod contract;
mod smoke;
