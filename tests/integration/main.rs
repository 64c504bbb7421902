//! Integration tests: the real binary, real HTTP, a temporary data dir.

mod backend;
mod demo;
mod harness;
mod raw_http;
mod resign;

mod backup;
mod concurrency;
mod config_file;
mod contract;
mod crash;
mod delivery;
mod fair_storage;
mod file_modes;
mod framing;
mod fsck;
mod health;
mod installations;
mod lifecycle;
mod live_changes;
mod master_key;
mod metrics;
mod migrate;
mod multi_node;
mod paging;
mod prometheus_server;
mod rate_limit;
mod retention;
mod secret_files;
mod shutdown;
mod slow_clients;
mod small_disk;
mod smoke;
mod strict_input;
mod upstream;
mod url_generations;
