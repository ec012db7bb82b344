//! One storage node on its own: its process surviving SIGKILL, and hostile input on its
//! internal RPC.

mod hostile_rpc;
mod process;
