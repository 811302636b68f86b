//! What the vault keeps on disk: sealed at rest, durable across crashes, every row checked
//! (one test binary, one build).

mod at_rest;
mod crash_soak;
mod durability;
mod row_integrity;
