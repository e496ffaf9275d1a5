// fxpack errors.
//
// Every failure the library reports is an fxpack::Error (a std::runtime_error), so callers
// can catch one type. The message always says what is wrong and where: the record name,
// node name, op target, byte offset or line that the problem was found at. The subclasses
// let callers tell the broad kinds apart without parsing messages:
//
//   GraphError   — an ill-formed graph or a misuse of the graph API (erase a used node, lint)
//   OpError      — a kernel refused its inputs (dtype, shape, arity) or a target has no kernel
//   FormatError  — a pickle or package is corrupt, truncated, hostile or from a newer version,
//                  or a value the format being written cannot hold
//   IoError      — the operating system refused a file operation or memory
//   ValueError   — an argument the callee refuses (a module configuration PyTorch's
//                  constructor rejects, a tensor shape that does not fit, a thread count out
//                  of range, a malformed op declaration) or a call the object's state does
//                  not allow (a finished writer, a closed exporter), as Python's ValueError
//   LookupError  — a name that is not there: a module's member or dotted path, a registered
//                  module kind, a dtype or dialect name
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

namespace fxpack {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class GraphError : public Error {
 public:
  using Error::Error;
};

class OpError : public Error {
 public:
  using Error::Error;
};

class FormatError : public Error {
 public:
  using Error::Error;
};

class IoError : public Error {
 public:
  using Error::Error;
};

class ValueError : public Error {
 public:
  using Error::Error;
};

class LookupError : public Error {
 public:
  using Error::Error;
};

// Throws `e` again with `context` before its message ("context: message"). With As = Error
// the class stays; with another As, an error becomes an As unless it is a FormatError or an
// IoError, which keep their class wherever they are noticed (a plan reports a failing kernel
// as an OpError naming the node, but a corrupt archive read during a call stays a
// FormatError).
template <class As = Error>
[[noreturn]] void rethrow_with_context(const Error& e, const std::string& context) {
  std::string msg = context + ": " + e.what();
  if (dynamic_cast<const FormatError*>(&e)) throw FormatError(msg);
  if (dynamic_cast<const IoError*>(&e)) throw IoError(msg);
  if constexpr (std::is_same_v<As, Error>) {
    if (dynamic_cast<const GraphError*>(&e)) throw GraphError(msg);
    if (dynamic_cast<const OpError*>(&e)) throw OpError(msg);
    if (dynamic_cast<const ValueError*>(&e)) throw ValueError(msg);
    if (dynamic_cast<const LookupError*>(&e)) throw LookupError(msg);
  }
  throw As(msg);
}

}  // namespace fxpack
