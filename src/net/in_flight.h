// InFlightGuard: enforces the "one send and one receive in flight" rule of
// Connection, Listener and SecureChannel. It sets a flag for the lifetime of
// an operation (a coroutine frame) and CHECKs that it was clear: a second
// concurrent call is a bug in the caller, not bad input.
//
// Not synchronized: the flag belongs to one executor, like the object it
// guards.
#pragma once

#include "core/check.h"

namespace tern::net {

class InFlightGuard {
 public:
  InFlightGuard(bool& flag, const char* operation) : flag_(flag) {
    TERN_CHECK(!flag_, "a second concurrent ", operation, " on one connection");
    flag_ = true;
  }
  ~InFlightGuard() { flag_ = false; }
  InFlightGuard(const InFlightGuard&) = delete;
  InFlightGuard& operator=(const InFlightGuard&) = delete;

 private:
  bool& flag_;
};

}  // namespace tern::net
