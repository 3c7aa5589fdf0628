//! Every option of ferrocgi, parsed and validated in one place (STUB: being written).
