//! Integration tests: the real binary, real HTTP, a temporary data dir.

mod backend;
mod demo;
mod harness;

mod concurrency;
mod contract;
mod crash;
mod delivery;
mod fsck;
mod lifecycle;
mod live_changes;
mod migrate;
mod multi_node;
mod rate_limit;
mod retention;
mod small_disk;
mod smoke;
mod upstream;
