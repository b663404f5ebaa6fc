//! The async client library that programs embed to talk to a mydht cluster.
//!
//! This crate will connect to one or more nodes and offer put, get, delete,
//! haskey, whereis and the admin calls, retrying on another node as the
//! seed's client did. It depends only on the ring and the wire protocol: it
//! never compiles a storage engine or a web framework. It arrives with the
//! working-cluster issue; until then the crate is empty on purpose.
