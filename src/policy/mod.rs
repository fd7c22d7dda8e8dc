//! Pure decisions, no I/O, property-tested: who may do what, what retention allows.
