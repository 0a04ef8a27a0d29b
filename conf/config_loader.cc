// conf/config_loader.cc — load_config(): YAML file -> validated Config, with
// every referenced file (certificate, keys, users file, admin token, API
// keys file) opened and checked, and every problem collected before giving
// up.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "conf/config.h"
#include "conf/config_api_keys.h"
#include "conf/config_policy.h"
#include "conf/config_reader.h"
#include "conf/config_units.h"
#include "conf/config_users.h"

namespace ringmail::conf {
namespace {

using detail::Fields;
using detail::is_host_name;
using detail::Item;
using detail::Need;
using detail::Reader;

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Never prompt on a terminal for a passphrase: encrypted keys are refused.
int refuse_passphrase(char*, int, int, void*) { return -1; }

PkeyPtr read_private_key(const std::filesystem::path& file) {
  BioPtr bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) return nullptr;
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
  ERR_clear_error();
  return key;
}

bool is_route_domain(std::string_view pattern) {
  if (pattern == "*") return true;
  if (pattern.starts_with("*.")) pattern.remove_prefix(2);
  return is_host_name(pattern);
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

class Loader {
 public:
  Loader(Reader& reader, Config& config) : r_(reader), config_(config) {}

  void load(const YAML::Node& root) {
    Item top{root, "", 1};
    if (root.IsNull()) {
      r_.error(1, "", "the config file is empty");
      return;
    }
    auto fields =
        r_.map(top, {"hostname", "listeners", "relay_networks", "tls", "auth", "limits", "spool",
                     "delivery", "dkim", "milters", "policy", "admin", "log", "webhooks"});
    if (!fields) return;
    read_hostname(*fields);
    read_tls(fields->get("tls"));
    read_auth(fields->get("auth"));
    read_listeners(r_.field(*fields, "listeners", Need::required));
    read_relay_networks(fields->get("relay_networks"));
    read_limits(fields->get("limits"));
    read_spool(r_.field(*fields, "spool", Need::required));
    read_delivery(fields->get("delivery"));
    read_dkim(fields->get("dkim"));
    read_milters(fields->get("milters"));
    config_.policy = detail::read_policy(r_, fields->get("policy"));
    if (auto policy = fields->get("policy"); policy && policy->node.IsMap()) {
      const YAML::Node& node = policy->node;
      return_path_written_ = static_cast<bool>(node["return_path"]);
    }
    config_.campaign_header = config_.policy->campaign_header;
    read_admin(fields->get("admin"));
    read_log(fields->get("log"));
    if (auto webhooks = fields->get("webhooks"))
      detail::read_webhooks(r_, *webhooks, config_.webhooks);
    check_listeners_against_sections();
  }

 private:
  void read_hostname(const Fields& fields) {
    auto item = r_.field(fields, "hostname", Need::required);
    if (!item) return;
    auto name = r_.string(*item);
    if (!name) return;
    if (!is_host_name(*name)) {
      r_.error(item->line, item->path, "\"" + *name + "\" is not a host name");
      return;
    }
    config_.hostname = *name;
  }

  void read_tls(const std::optional<Item>& item) {
    if (!item) return;
    auto fields = r_.map(*item, {"certificate", "private_key"});
    if (!fields) return;
    has_tls_section_ = true;
    auto cert_item = r_.field(*fields, "certificate", Need::required);
    auto key_item = r_.field(*fields, "private_key", Need::required);
    std::optional<std::filesystem::path> cert_path, key_path;
    if (cert_item) cert_path = r_.path(*cert_item);
    if (key_item) key_path = r_.path(*key_item);

    X509Ptr cert;
    if (cert_path && r_.check_readable_file(*cert_item, *cert_path)) {
      BioPtr bio(BIO_new_file(cert_path->c_str(), "r"));
      if (bio) cert.reset(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr));
      ERR_clear_error();
      if (!cert) {
        r_.error(cert_item->line, cert_item->path,
                 cert_path->string() + " holds no PEM certificate");
      } else if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
        r_.warning(cert_item->line, cert_item->path,
                   "the certificate in " + cert_path->string() + " has expired");
      }
      config_.tls.certificate = *cert_path;
    }
    PkeyPtr key;
    if (key_path && r_.check_readable_file(*key_item, *key_path)) {
      key = read_private_key(*key_path);
      if (!key) {
        r_.error(key_item->line, key_item->path,
                 key_path->string() + " holds no PEM private key (or it is encrypted)");
      }
      config_.tls.private_key = *key_path;
    }
    if (cert && key && X509_check_private_key(cert.get(), key.get()) != 1) {
      ERR_clear_error();
      r_.error(key_item->line, key_item->path,
               "the private key in " + key_path->string() + " does not match the certificate in " +
                   cert_path->string());
    }
  }

  void read_auth(const std::optional<Item>& item) {
    if (!item) return;
    auto fields = r_.map(*item, {"users_file"});
    if (!fields) return;
    // Problems inside auth: are reported there; listeners need not repeat them.
    has_auth_section_ = true;
    auto file_item = r_.field(*fields, "users_file", Need::required);
    if (!file_item) return;
    auto file = r_.path(*file_item);
    if (!file || !r_.check_readable_file(*file_item, *file)) return;
    config_.auth.users_file = *file;
    UsersFile users = load_users_file(*file);
    if (!users.errors.empty()) {
      r_.error(file_item->line, file_item->path,
               "the users file " + file->string() + " has " + std::to_string(users.errors.size()) +
                   " problem(s), listed below");
      // They carry the users file's own name and lines.
      users_file_errors_ = std::move(users.errors);
    } else if (users.users.empty()) {
      r_.warning(file_item->line, file_item->path,
                 "the users file " + file->string() + " has no users; nobody can authenticate");
    }
  }

  // Every listener is checked against the other sections too, even one with
  // a bad key elsewhere, so that one run reports all of its problems; only
  // fully valid ones go into the Config.
  void read_listeners(const std::optional<Item>& item) {
    if (!item) return;
    auto items = r_.list(*item);
    if (!items) return;
    if (items->empty()) {
      r_.error(item->line, item->path, "at least one listener is needed");
      return;
    }
    for (const Item& element : *items) {
      auto fields = r_.map(element, {"name", "address", "mode", "tls", "require_tls_for_auth"});
      if (!fields) continue;
      ListenerCheck check;
      check.path = element.path;
      check.line = fields->line();
      check.mode_item = fields->get("mode");
      check.tls_item = fields->get("tls");
      check.address_item = fields->get("address");
      check.auth_item = fields->get("require_tls_for_auth");
      Listener& listener = check.listener;
      bool ok = true;
      if (auto name = r_.string(*fields, "name", Need::required)) {
        for (const ListenerCheck& other : listener_checks_) {
          if (other.has_name && other.listener.name == *name) {
            r_.error(fields->get("name")->line, detail::child_path(element.path, "name"),
                     "duplicate listener name \"" + *name + "\" (also " + other.path + ")");
            ok = false;
          }
        }
        listener.name = *name;
        check.has_name = true;
      } else {
        ok = false;
      }
      if (auto address_item = r_.field(*fields, "address", Need::required)) {
        AddressOptions options;
        options.allow_port_zero = true;
        if (auto address = r_.address(*address_item, options)) {
          listener.address = *address;
          check.has_address = true;
        } else {
          ok = false;
        }
      } else {
        ok = false;
      }
      if (check.mode_item) {
        auto mode =
            r_.choice<ListenerMode>(*check.mode_item, {{"submission", ListenerMode::submission},
                                                       {"relay", ListenerMode::relay},
                                                       {"feedback", ListenerMode::feedback}});
        if (mode) listener.mode = *mode;
        check.has_mode = mode.has_value();
        ok = ok && mode.has_value();
      }
      if (check.tls_item) {
        auto tls = r_.choice<TlsMode>(*check.tls_item, {{"none", TlsMode::none},
                                                        {"starttls", TlsMode::starttls},
                                                        {"implicit", TlsMode::implicit}});
        if (tls) listener.tls = *tls;
        check.has_tls = tls.has_value();
        ok = ok && tls.has_value();
      }
      if (auto value = fields->get("require_tls_for_auth")) {
        auto flag = r_.boolean(*value);
        if (flag) listener.require_tls_for_auth = *flag;
        ok = ok && flag.has_value();
      }
      listener_checks_.push_back(check);
      if (ok) config_.listeners.push_back(std::move(listener));
    }
  }

  // A bad entry is reported on its own line and then skipped; it still
  // counts as written, so that the "empty" check below does not add a
  // second, misleading problem for a list that is not empty.
  void read_relay_networks(const std::optional<Item>& item) {
    if (!item) return;
    relay_networks_line_ = item->line;
    auto items = r_.list(*item);
    if (!items) {
      relay_networks_written_ = true;  // the type error is the one problem
      return;
    }
    relay_networks_written_ = !items->empty();
    for (const Item& element : *items) {
      if (auto network = r_.network(element)) config_.relay_networks.push_back(*network);
    }
  }

  void read_limits(const std::optional<Item>& item) {
    if (!item) return;
    auto fields = r_.map(
        *item, {"max_message_size", "max_recipients", "max_connections", "idle_timeout",
                "shutdown_timeout", "command_timeout", "tls_handshake_timeout", "min_data_rate",
                "data_rate_grace", "max_connections_per_ip", "connection_limit_exempt"});
    if (!fields) return;
    Limits& limits = config_.limits;
    if (auto value = r_.size(*fields, "max_message_size", Need::optional)) {
      if (*value < 1024) {
        r_.error(fields->get("max_message_size")->line,
                 detail::child_path(fields->path(), "max_message_size"), "must be at least 1KiB");
      } else {
        limits.max_message_size = *value;
      }
    }
    if (auto value = r_.integer(*fields, "max_recipients", Need::optional, 1, 1000000)) {
      limits.max_recipients = static_cast<uint32_t>(*value);
    }
    if (auto value = r_.integer(*fields, "max_connections", Need::optional, 1, 10000000)) {
      limits.max_connections = static_cast<uint32_t>(*value);
    }
    if (auto value = r_.duration(*fields, "idle_timeout", Need::optional)) {
      limits.idle_timeout = *value;
    }
    if (auto value = r_.duration(*fields, "shutdown_timeout", Need::optional)) {
      limits.shutdown_timeout = *value;
    }
    read_deadline(*fields, "command_timeout", &limits.command_timeout);
    read_deadline(*fields, "tls_handshake_timeout", &limits.tls_handshake_timeout);
    if (auto rate_item = r_.field(*fields, "min_data_rate", Need::optional)) {
      if (auto text = r_.string(*rate_item)) {
        if (auto rate = parse_size_rate(*text)) {
          limits.min_data_rate = *rate;
        } else {
          r_.error(rate_item->line, rate_item->path,
                   "bad rate \"" + *text + "\" (expected a size per second like 1KiB/s, or 0)");
        }
      }
    }
    if (auto value = r_.duration(*fields, "data_rate_grace", Need::optional)) {
      limits.data_rate_grace = *value;
    }
    if (auto value = r_.integer(*fields, "max_connections_per_ip", Need::optional, 0, 10000000)) {
      limits.max_connections_per_ip = static_cast<uint32_t>(*value);
    }
    if (auto exempt = fields->get("connection_limit_exempt")) {
      if (auto items = r_.list(*exempt)) {
        for (const Item& element : *items) {
          if (auto network = r_.network(element)) {
            limits.connection_limit_exempt.push_back(*network);
          }
        }
      }
    }
  }

  // A deadline of at least 1s: below that, ordinary network delay ends
  // sessions.
  void read_deadline(const Fields& fields, std::string_view key, Duration* out) {
    auto value = r_.duration(fields, key, Need::optional);
    if (!value) return;
    if (*value < std::chrono::seconds(1)) {
      r_.error(fields.get(key)->line, detail::child_path(fields.path(), key),
               "must be at least 1s");
      return;
    }
    *out = *value;
  }

  void read_spool(const std::optional<Item>& item) {
    if (!item) return;
    auto fields = r_.map(*item, {"path", "max_size", "reserve", "keep_status", "keep_failed"});
    if (!fields) return;
    if (auto path_item = r_.field(*fields, "path", Need::required)) {
      if (auto path = r_.path(*path_item)) {
        std::error_code ec;
        auto parent = path->parent_path();
        if (!std::filesystem::is_directory(parent, ec)) {
          r_.error(path_item->line, path_item->path,
                   "the directory " + parent.string() + " (parent of the spool) does not exist");
        } else if (std::filesystem::exists(*path, ec) &&
                   !std::filesystem::is_directory(*path, ec)) {
          r_.error(path_item->line, path_item->path, path->string() + " is not a directory");
        }
        config_.spool.path = *path;
      }
    }
    if (auto value = r_.size(*fields, "max_size", Need::optional)) {
      if (*value < (1ull << 20)) {
        r_.error(fields->get("max_size")->line, detail::child_path(fields->path(), "max_size"),
                 "must be at least 1MiB");
      } else {
        config_.spool.max_size = *value;
      }
    }
    if (auto value = r_.size(*fields, "reserve", Need::optional)) {
      if (*value * 2 >= config_.spool.max_size) {
        r_.error(fields->get("reserve")->line, detail::child_path(fields->path(), "reserve"),
                 "must be less than half of spool.max_size");
      } else {
        config_.spool.reserve = *value;
      }
    }
    read_retention(*fields, "keep_status", &config_.spool.keep_status);
    read_retention(*fields, "keep_failed", &config_.spool.keep_failed);
  }

  // spool.keep_status, spool.keep_failed: a duration, or 0 for "not kept";
  // at most 10 years (a typo in the unit should not keep records forever).
  void read_retention(const Fields& fields, std::string_view key, Duration* out) {
    const auto item = fields.get(key);
    if (!item) return;
    if (item->node.IsScalar() && item->node.Scalar() == "0") {
      *out = Duration{0};
      return;
    }
    auto value = r_.duration(*item);
    if (!value) return;
    if (*value > std::chrono::hours(24 * 3650)) {
      r_.error(item->line, item->path, "must be at most 3650d (0 turns it off)");
      return;
    }
    *out = *value;
  }

  void read_delivery(const std::optional<Item>& item) {
    if (!item) return;
    auto fields =
        r_.map(*item, {"routes", "dns", "retry", "generate_dsn", "smtp_port", "tls",
                       "max_connections", "max_connections_per_site", "max_messages_per_connection",
                       "initial_connections", "idle_timeout", "timeouts", "paused"});
    if (!fields) return;
    DeliveryConfig& delivery = config_.delivery;
    if (auto routes = fields->get("routes")) {
      for (const Item& element : r_.list(*routes).value_or(std::vector<Item>{})) {
        auto route_fields = r_.map(element, {"domain", "smarthost"});
        if (!route_fields) continue;
        Route route;
        auto domain_item = r_.field(*route_fields, "domain", Need::required);
        auto domain = domain_item ? r_.string(*domain_item) : std::nullopt;
        if (domain && !is_route_domain(*domain)) {
          r_.error(domain_item->line, domain_item->path,
                   "\"" + *domain + "\" is not a domain, \"*.suffix\" or \"*\"");
          domain.reset();
        }
        std::optional<SocketAddress> smarthost;
        bool hosts_ok = true;
        if (auto host_item = r_.field(*route_fields, "smarthost", Need::required)) {
          AddressOptions options;
          options.default_port = 25;
          if (host_item->node.IsSequence()) {
            // A failover list: tried in order.
            for (const Item& one : r_.list(*host_item).value_or(std::vector<Item>{})) {
              std::optional<SocketAddress> address = r_.address(one, options);
              if (!address) {
                hosts_ok = false;
              } else if (!smarthost) {
                smarthost = address;
              } else {
                route.failover.push_back(*address);
              }
            }
            if (!smarthost && hosts_ok) {
              r_.error(host_item->line, host_item->path,
                       "an empty list: name at least one IP:port");
            }
          } else {
            smarthost = r_.address(*host_item, options);
          }
        }
        if (!domain || !smarthost || !hosts_ok) continue;
        route.domain = lower(*domain);
        route.smarthost = *smarthost;
        delivery.routes.push_back(std::move(route));
      }
    }
    if (auto dns = fields->get("dns")) {
      if (auto dns_fields = r_.map(*dns, {"nameservers"})) {
        if (auto servers = dns_fields->get("nameservers")) {
          for (const Item& element : r_.list(*servers).value_or(std::vector<Item>{})) {
            AddressOptions options;
            options.default_port = 53;
            if (auto address = r_.address(element, options)) {
              delivery.dns.nameservers.push_back(*address);
            }
          }
        }
      }
    }
    if (auto retry = fields->get("retry")) {
      if (auto retry_fields = r_.map(*retry, {"intervals", "max_age"})) {
        if (auto intervals = retry_fields->get("intervals")) {
          if (auto items = r_.list(*intervals)) {
            std::vector<Duration> values;
            bool ok = true;
            for (const Item& element : *items) {
              auto value = r_.duration(element);
              if (value && value->count() == 0) {
                r_.error(element.line, element.path, "a retry interval must be longer than 0");
                value.reset();
              }
              if (value) values.push_back(*value);
              ok = ok && value.has_value();
            }
            if (items->empty()) {
              r_.error(intervals->line, intervals->path, "at least one interval is needed");
            } else if (ok) {
              delivery.retry.intervals = std::move(values);
            }
          }
        }
        if (auto value = r_.duration(*retry_fields, "max_age", Need::optional)) {
          delivery.retry.max_age = *value;
        }
      }
    }
    if (auto value = r_.boolean(*fields, "generate_dsn", Need::optional)) {
      delivery.generate_dsn = *value;
    }
    if (auto value = r_.integer(*fields, "smtp_port", Need::optional, 1, 65535)) {
      delivery.smtp_port = static_cast<uint16_t>(*value);
    }
    if (auto tls_item = fields->get("tls")) {
      if (auto text = r_.string(*tls_item)) {
        if (*text == "none") {
          delivery.tls = OutboundTls::none;
        } else if (*text == "opportunistic") {
          delivery.tls = OutboundTls::opportunistic;
        } else if (*text == "required") {
          delivery.tls = OutboundTls::required;
        } else {
          r_.error(tls_item->line, tls_item->path,
                   "\"" + *text + "\" is not one of none, opportunistic, required");
        }
      }
    }
    if (auto value = r_.integer(*fields, "max_connections", Need::optional, 1, 1000000)) {
      delivery.max_connections = static_cast<uint32_t>(*value);
    }
    if (auto value = r_.integer(*fields, "max_connections_per_site", Need::optional, 1, 100000)) {
      delivery.max_connections_per_site = static_cast<uint32_t>(*value);
    }
    if (auto value = r_.integer(*fields, "initial_connections", Need::optional, 1, 100000)) {
      delivery.initial_connections = static_cast<uint32_t>(*value);
    }
    if (auto value =
            r_.integer(*fields, "max_messages_per_connection", Need::optional, 1, 1000000)) {
      delivery.max_messages_per_connection = static_cast<uint32_t>(*value);
    }
    if (auto value = r_.duration(*fields, "idle_timeout", Need::optional)) {
      delivery.idle_timeout = *value;
    }
    if (auto value = r_.boolean(*fields, "paused", Need::optional)) delivery.paused = *value;
    if (auto timeouts = fields->get("timeouts")) {
      DeliveryTimeouts& t = delivery.timeouts;
      const std::pair<const char*, Duration*> keys[] = {
          {"connect", &t.connect},     {"greeting", &t.greeting},
          {"ehlo", &t.ehlo},           {"starttls", &t.starttls},
          {"mail", &t.mail},           {"rcpt", &t.rcpt},
          {"data_init", &t.data_init}, {"data_block", &t.data_block},
          {"data_term", &t.data_term}, {"quit", &t.quit}};
      if (auto timeout_fields =
              r_.map(*timeouts, {"connect", "greeting", "ehlo", "starttls", "mail", "rcpt",
                                 "data_init", "data_block", "data_term", "quit"})) {
        for (const auto& [name, target] : keys) {
          if (auto item = timeout_fields->get(name)) {
            auto value = r_.duration(*item);
            if (value && value->count() == 0) {
              r_.error(item->line, item->path, "a timeout must be longer than 0");
            } else if (value) {
              *target = *value;
            }
          }
        }
      }
    }
  }

  void read_dkim(const std::optional<Item>& item) {
    if (!item) return;
    auto items = r_.list(*item);
    if (!items) return;
    for (const Item& element : *items) {
      auto fields = r_.map(element, {"domain", "selector", "private_key", "headers",
                                     "canonicalization", "expire_after", "subdomains"});
      if (!fields) continue;
      DkimKey key;
      bool ok = true;
      auto domain_item = r_.field(*fields, "domain", Need::required);
      if (auto domain = domain_item ? r_.string(*domain_item) : std::nullopt) {
        if (is_host_name(*domain)) {
          key.domain = lower(*domain);
        } else {
          r_.error(domain_item->line, domain_item->path, "\"" + *domain + "\" is not a domain");
          ok = false;
        }
      } else {
        ok = false;
      }
      auto selector_item = r_.field(*fields, "selector", Need::required);
      if (auto selector = selector_item ? r_.string(*selector_item) : std::nullopt) {
        if (is_host_name(*selector)) {
          key.selector = *selector;
        } else {
          r_.error(selector_item->line, selector_item->path,
                   "\"" + *selector + "\" is not a DKIM selector (DNS labels)");
          ok = false;
        }
      } else {
        ok = false;
      }
      if (auto key_item = r_.field(*fields, "private_key", Need::required)) {
        auto path = r_.path(*key_item);
        if (path && r_.check_readable_file(*key_item, *path)) {
          key.private_key = *path;
          ok = check_dkim_key(*key_item, *path) && ok;
        } else {
          ok = false;
        }
      } else {
        ok = false;
      }
      if (auto headers_item = fields->get("headers")) {
        if (auto headers = r_.list(*headers_item)) {
          std::vector<std::string> names;
          for (const Item& header : *headers) {
            if (auto name = r_.string(header)) names.push_back(lower(*name));
          }
          if (std::find(names.begin(), names.end(), "from") == names.end()) {
            r_.error(headers_item->line, headers_item->path,
                     "must include \"from\" (RFC 6376 requires the From header to be signed)");
            ok = false;
          }
          key.headers = std::move(names);
        }
      }
      if (auto canon_item = fields->get("canonicalization")) {
        if (auto canon = r_.string(*canon_item)) {
          const std::string c = lower(*canon);
          const auto slash = c.find('/');
          const std::string head = c.substr(0, slash);
          // As in a DKIM c= tag, one word names the header canonicalization
          // and the body's is then simple (RFC 6376 3.5).
          const std::string body = slash == std::string::npos ? "simple" : c.substr(slash + 1);
          auto known = [](const std::string& v) { return v == "relaxed" || v == "simple"; };
          if (known(head) && known(body)) {
            key.simple_header_canonicalization = head == "simple";
            key.simple_body_canonicalization = body == "simple";
          } else {
            r_.error(canon_item->line, canon_item->path,
                     "\"" + *canon +
                         "\" is not relaxed/relaxed, simple/simple, relaxed/simple or "
                         "simple/relaxed");
            ok = false;
          }
        } else {
          ok = false;
        }
      }
      if (fields->get("expire_after")) {
        if (auto d = r_.duration(*fields, "expire_after", Need::optional)) {
          if (*d < std::chrono::seconds(1)) {
            r_.error(fields->get("expire_after")->line, fields->get("expire_after")->path,
                     "must be at least 1s (x= must be later than t=, RFC 6376 3.5)");
            ok = false;
          } else {
            key.expire_after = *d;
          }
        } else {
          ok = false;
        }
      }
      if (auto sub = r_.boolean(*fields, "subdomains", Need::optional)) key.match_subdomains = *sub;
      if (!ok) continue;
      for (const DkimKey& other : config_.dkim) {
        if (other.domain == key.domain && other.selector == key.selector) {
          r_.error(fields->line(), element.path,
                   "domain " + key.domain + " with selector " + key.selector + " is given twice");
          ok = false;
        }
      }
      if (ok) config_.dkim.push_back(std::move(key));
    }
  }

  bool check_dkim_key(const Item& item, const std::filesystem::path& path) {
    PkeyPtr key = read_private_key(path);
    if (!key) {
      r_.error(item.line, item.path,
               path.string() + " holds no PEM private key (or it is encrypted)");
      return false;
    }
    int type = EVP_PKEY_get_base_id(key.get());
    if (type == EVP_PKEY_ED25519) return true;
    if (type != EVP_PKEY_RSA) {
      r_.error(
          item.line, item.path,
          path.string() + " is neither an RSA nor an Ed25519 key (DKIM signs with those only)");
      return false;
    }
    int bits = EVP_PKEY_get_bits(key.get());
    if (bits < 1024) {
      r_.error(item.line, item.path,
               "the RSA key in " + path.string() + " has " + std::to_string(bits) +
                   " bits; receivers reject DKIM keys under 1024 bits (use 2048)");
      return false;
    }
    if (bits > 4096) {
      r_.error(item.line, item.path,
               "the RSA key in " + path.string() + " has " + std::to_string(bits) +
                   " bits; DKIM keys over 4096 bits are not verifiable by most receivers");
      return false;
    }
    if (bits < 2048) {
      r_.warning(item.line, item.path,
                 "the RSA key in " + path.string() + " has " + std::to_string(bits) +
                     " bits; 2048 is recommended");
    }
    return true;
  }

  void read_milters(const std::optional<Item>& item) {
    if (!item) return;
    auto items = r_.list(*item);
    if (!items) return;
    for (const Item& element : *items) {
      auto fields = r_.map(element, {"name", "address", "on_failure", "timeout"});
      if (!fields) continue;
      Milter milter;
      bool ok = true;
      if (auto name = r_.string(*fields, "name", Need::required)) {
        for (const Milter& other : config_.milters) {
          if (other.name == *name) {
            r_.error(fields->get("name")->line, detail::child_path(element.path, "name"),
                     "duplicate milter name \"" + *name + "\"");
            ok = false;
          }
        }
        milter.name = *name;
      } else {
        ok = false;
      }
      if (auto address_item = r_.field(*fields, "address", Need::required)) {
        AddressOptions options;
        options.allow_unix = true;
        auto address = r_.address(*address_item, options);
        if (address) milter.address = *address;
        ok = ok && address.has_value();
      } else {
        ok = false;
      }
      if (auto failure_item = fields->get("on_failure")) {
        auto failure =
            r_.choice<MilterFailure>(*failure_item, {{"tempfail", MilterFailure::tempfail},
                                                     {"accept", MilterFailure::accept},
                                                     {"reject", MilterFailure::reject}});
        if (failure) milter.on_failure = *failure;
        ok = ok && failure.has_value();
      }
      if (auto timeout_item = fields->get("timeout")) {
        auto timeout = r_.duration(*timeout_item);
        if (timeout) milter.timeout = *timeout;
        ok = ok && timeout.has_value();
      }
      if (ok) config_.milters.push_back(std::move(milter));
    }
  }

  void read_admin(const std::optional<Item>& item) {
    if (!item) return;
    auto fields = r_.map(*item, {"address", "token_file", "metrics_auth", "api_keys_file"});
    if (!fields) return;
    AdminConfig& admin = config_.admin;
    if (auto address_item = fields->get("address")) {
      AddressOptions options;
      options.allow_port_zero = true;
      admin.address = r_.address(*address_item, options);
    }
    // The API is useless and unsafe without a token, so one is required
    // whenever the API listens.
    Need token_need = fields->has("address") ? Need::required : Need::optional;
    if (auto token_item = r_.field(*fields, "token_file", token_need)) {
      auto path = r_.path(*token_item);
      if (path && r_.check_readable_file(*token_item, *path)) {
        std::ifstream stream(*path, std::ios::binary);
        std::string token((std::istreambuf_iterator<char>(stream)),
                          std::istreambuf_iterator<char>());
        if (trim_token(token).empty()) {
          r_.error(token_item->line, token_item->path,
                   "the token file " + path->string() + " is empty");
        }
        admin.token_file = *path;
      }
    }
    if (auto value = r_.boolean(*fields, "metrics_auth", Need::optional)) {
      admin.metrics_auth = *value;
    }
    read_api_keys(*fields);
  }

  // admin.api_keys_file: read here, so that --check-config validates it and
  // a reload (which loads the config afresh) reads it again.
  void read_api_keys(const Fields& fields) {
    auto file_item = fields.get("api_keys_file");
    if (!file_item) return;
    auto file = r_.path(*file_item);
    if (!file || !r_.check_readable_file(*file_item, *file)) return;
    config_.admin.api_keys_file = *file;
    ApiKeysFile keys = load_api_keys_file(*file);
    if (!keys.errors.empty()) {
      r_.error(file_item->line, file_item->path,
               "the API keys file " + file->string() + " has " +
                   std::to_string(keys.errors.size()) + " problem(s), listed below");
      // They carry the keys file's own name and lines.
      api_keys_file_errors_ = std::move(keys.errors);
    } else if (keys.keys.empty()) {
      r_.warning(file_item->line, file_item->path,
                 "the API keys file " + file->string() +
                     " has no keys; only the admin token "
                     "can inject");
    }
    config_.admin.api_keys = std::move(keys.keys);
  }

  void read_log(const std::optional<Item>& item) {
    if (!item) return;
    auto fields = r_.map(*item, {"level", "delivery_log"});
    if (!fields) return;
    if (auto level_item = fields->get("level")) {
      auto level = r_.choice<std::string_view>(*level_item, {{"trace", "trace"},
                                                             {"debug", "debug"},
                                                             {"info", "info"},
                                                             {"warn", "warn"},
                                                             {"error", "error"},
                                                             {"critical", "critical"},
                                                             {"off", "off"}});
      if (level) config_.log.level = std::string(*level);
    }
    if (auto log_item = fields->get("delivery_log")) {
      if (auto path = r_.path(*log_item)) {
        std::error_code ec;
        if (!std::filesystem::is_directory(path->parent_path(), ec)) {
          r_.error(log_item->line, log_item->path,
                   "the directory " + path->parent_path().string() + " does not exist");
        } else if (std::filesystem::is_directory(*path, ec)) {
          r_.error(log_item->line, log_item->path, path->string() + " is a directory");
        }
        config_.log.delivery_log = *path;
      }
    }
  }

  // Rules that tie a listener to other sections.
  void check_listeners_against_sections() {
    int first_relay_line = 0;
    for (size_t i = 0; i < listener_checks_.size(); ++i) {
      const ListenerCheck& check = listener_checks_[i];
      const Listener& listener = check.listener;
      int tls_line = check.tls_item ? check.tls_item->line : check.line;
      std::string tls_path = detail::child_path(check.path, "tls");
      if (check.has_tls && listener.tls != TlsMode::none && !has_tls_section_) {
        r_.error(
            tls_line, tls_path,
            "tls: " + std::string(listener.tls == TlsMode::starttls ? "starttls" : "implicit") +
                " needs a top-level tls: section with certificate and private_key");
      }
      if (check.has_mode && listener.mode == ListenerMode::submission) {
        int mode_line = check.mode_item ? check.mode_item->line : check.line;
        if (!has_auth_section_) {
          r_.error(mode_line, detail::child_path(check.path, "mode"),
                   "mode submission needs auth.users_file");
        }
        if (check.has_tls && listener.tls == TlsMode::none && listener.require_tls_for_auth) {
          r_.error(tls_line, tls_path,
                   "a submission listener without TLS can never authenticate; use starttls or "
                   "implicit, or set require_tls_for_auth: false");
        }
      } else if (check.has_mode && listener.mode == ListenerMode::feedback) {
        check_feedback_listener(check);
      } else if (check.has_mode && first_relay_line == 0) {
        first_relay_line = check.line;
      }
      for (size_t j = 0; j < i && check.has_address; ++j) {
        const ListenerCheck& other = listener_checks_[j];
        const SocketAddress& a = other.listener.address;
        if (other.has_address && a.host == listener.address.host &&
            a.port == listener.address.port && a.port != 0) {
          r_.error(check.address_item->line, check.address_item->path,
                   listener.address.text + " is already used by " + other.path);
        }
      }
    }
    if (first_relay_line != 0 && !relay_networks_written_) {
      r_.warning(relay_networks_line_ != 0 ? relay_networks_line_ : first_relay_line,
                 "relay_networks", "empty: relay listeners will refuse every client");
    }
  }

  struct ListenerCheck {
    Listener listener;
    std::string path;
    int line = 0;
    std::optional<Item> mode_item;
    std::optional<Item> tls_item;
    std::optional<Item> address_item;
    std::optional<Item> auth_item;  // require_tls_for_auth, when written
    bool has_name = false;
    bool has_address = false;
    bool has_mode = true;  // false when mode: or tls: has a bad value
    bool has_tls = true;
  };

  // A feedback listener takes mail for policy.return_path.domain from
  // anyone: no AUTH, no relaying (CONTRACT.md "Feedback").
  void check_feedback_listener(const ListenerCheck& check) {
    const int mode_line = check.mode_item ? check.mode_item->line : check.line;
    const std::string mode_path = detail::child_path(check.path, "mode");
    if (!config_.policy->return_path && !return_path_written_) {
      r_.error(mode_line, mode_path, "mode feedback needs policy.return_path");
    }
    if (check.auth_item) {
      r_.error(check.auth_item->line, check.auth_item->path,
               "a feedback listener takes no AUTH; remove require_tls_for_auth");
    }
  }

  Reader& r_;
  Config& config_;
  bool has_tls_section_ = false;
  bool has_auth_section_ = false;
  bool relay_networks_written_ = false;  // at least one entry, good or bad
  int relay_networks_line_ = 0;          // 0 when the key is absent
  std::vector<ListenerCheck> listener_checks_;
  bool return_path_written_ = false;  // even with errors of its own

 public:
  std::vector<ConfigError> users_file_errors_;
  std::vector<ConfigError> api_keys_file_errors_;
};

}  // namespace

LoadResult load_config(const std::filesystem::path& file) {
  LoadResult result;
  std::string label = file.string();
  try {
    std::error_code ec;
    std::filesystem::path absolute = std::filesystem::absolute(file, ec);
    if (ec) absolute = file;
    absolute = absolute.lexically_normal();
    Reader reader(label, absolute.parent_path(), &result.errors, &result.warnings);

    std::optional<YAML::Node> loaded = reader.load_file(file, "config file");
    if (!loaded) return result;
    YAML::Node root = *loaded;

    auto config = std::make_shared<Config>();
    config->source_file = absolute;
    Loader loader(reader, *config);
    loader.load(root);
    if (!config->policy) config->policy = std::make_shared<PolicyConfig>();

    // Problems of the config file in line order, then those of the files it
    // names (the users file) in theirs.
    std::stable_sort(result.errors.begin(), result.errors.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    std::stable_sort(result.warnings.begin(), result.warnings.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    for (auto& e : loader.users_file_errors_) result.errors.push_back(std::move(e));
    for (auto& e : loader.api_keys_file_errors_) result.errors.push_back(std::move(e));
    if (result.errors.empty()) result.config = std::move(config);
  } catch (const std::exception& e) {
    result.errors.push_back(ConfigError{label, 0, "", std::string("cannot load: ") + e.what()});
  } catch (...) {
    result.errors.push_back(ConfigError{label, 0, "", "cannot load: unknown error"});
  }
  return result;
}

std::string trim_token(std::string_view contents) {
  size_t end = contents.size();
  while (end > 0 && std::isspace(static_cast<unsigned char>(contents[end - 1]))) --end;
  return std::string(contents.substr(0, end));
}

}  // namespace ringmail::conf
