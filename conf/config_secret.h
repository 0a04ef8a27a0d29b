// conf/config_secret.h — the HMAC key files of the feedback features
// (policy.return_path.key_file, policy.list_unsubscribe.key_file,
// webhooks[].secret_file): CONTRACT.md says each holds at least 32 octets,
// used as the key as read, with one trailing newline stripped. This is the
// one reader of such files; load_config() calls it for all three, so that
// --check-config reports a short or unreadable key and a reload reads the
// files again.
//
// Threads: any; reads one small file. Trust: operator files. SECURITY: the
// key's octets end up in the Config (the tokens need them); nothing here
// logs them, and problems name the file, never its contents.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace ringmail::conf {

inline constexpr size_t kMinHmacKeyOctets = 32;
// A key file larger than this is refused as not a key (a wrong path).
inline constexpr size_t kMaxHmacKeyFileOctets = 4096;

// The key in `file`: its contents less one trailing "\n". nullopt with
// *problem (a sentence naming the file) when it cannot be read, is larger
// than kMaxHmacKeyFileOctets, or the key is shorter than kMinHmacKeyOctets.
std::optional<std::string> read_hmac_key_file(const std::filesystem::path& file,
                                              std::string* problem);

}  // namespace ringmail::conf
