//! Integration tests: the real binary, real HTTP, a temporary data dir.

mod backend;
mod demo;
mod harness;

mod concurrency;
mod contract;
mod crash;
mod delivery;
mod fair_storage;
mod file_modes;
mod fsck;
mod lifecycle;
mod master_key;
mod migrate;
mod multi_node;
mod retention;
mod small_disk;
mod smoke;
mod upstream;
