//! Integration tests: the real binary, real HTTP, a temporary data dir.

mod backend;
mod demo;
mod harness;
mod raw_http;

mod concurrency;
mod contract;
mod crash;
mod delivery;
mod framing;
mod fsck;
mod lifecycle;
mod migrate;
mod multi_node;
mod retention;
mod slow_clients;
mod small_disk;
mod smoke;
mod upstream;
