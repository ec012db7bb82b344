//! One storage node on its own: its process surviving SIGKILL, hostile input on its
//! internal RPC, and batched calls.

mod batched_calls;
mod hostile_rpc;
mod process;
