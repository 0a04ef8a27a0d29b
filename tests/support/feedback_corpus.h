// tests/support/feedback_corpus.h — the DSN, ARF and auto-reply samples of
// tests/mail/feedback_corpus/, read as bytes, for the test suites of every
// folder (the parser's, the attribution rules', the listener's).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace ringmail::test_support {

// "" when the file is missing (the caller's assertion then names it).
inline std::string read_feedback_corpus(const std::string& name) {
  std::ifstream in(std::string(RINGMAIL_SOURCE_DIR) + "/tests/mail/feedback_corpus/" + name,
                   std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace ringmail::test_support
