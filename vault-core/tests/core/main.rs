//! vault-core's integration tests: its public API only, one module per area (one test binary,
//! one build). `support` holds the vaults and devices several of them start from.

mod devices;
mod ended_grants;
mod erasure;
mod machines;
mod restores;
mod retraction;
mod rotation;
mod session;
mod shared_state;

mod support {
    pub(crate) mod devices;
    pub(crate) mod pair;
}
