// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/control_service.hpp"

#include <fmt/format.h>

#include "na64/daq/monitor.hpp"
#include "na64/daq/run_control.hpp"
#include "na64/daq/run_db.hpp"

namespace na64::daq {

namespace {

constexpr std::uint32_t kDefaultRunList = 20;
constexpr std::uint32_t kMaxRunList = 1000;

}  // namespace

const char* to_string(Role role) noexcept {
  switch (role) {
    case Role::Anonymous: return "anonymous";
    case Role::Shift: return "shift";
    case Role::Expert: return "expert";
  }
  return "unknown";
}

std::optional<Role> role_from_string(std::string_view name) noexcept {
  if (name == "shift") return Role::Shift;
  if (name == "expert") return Role::Expert;
  return std::nullopt;
}

Role required_role(const control::Request& request) noexcept {
  using R = control::Request;
  switch (request.command_case()) {
    case R::kStart:
    case R::kStop:
    case R::kPause:
    case R::kResume:
    case R::kReset:
    case R::kComment:
    case R::kAckAlarm: return Role::Shift;
    case R::kConfigure:
    case R::kSetThresholds:
    case R::kUseThresholdSet:
    case R::kClearShadow: return Role::Expert;
    case R::kStatus:
    case R::kGetThresholds:
    case R::kListRuns:
    case R::kShowRun:
    case R::kListAlarms:
    case R::COMMAND_NOT_SET: break;
  }
  return Role::Anonymous;
}

ControlService::ControlService(RunControl& control, RunDatabase& database, Monitor* monitor)
    : control_(control), database_(database), monitor_(monitor) {
  control_.set_listener([this](const control::Event& e) { publish(e); });
  if (monitor_ != nullptr) monitor_->set_listener([this](const control::Event& e) { publish(e); });
}

ControlService::~ControlService() {
  if (monitor_ != nullptr) monitor_->set_listener({});
  control_.set_listener({});
}

void ControlService::publish(const control::Event& e) {
  std::lock_guard lock(listeners_m_);
  for (const auto& l : listeners_) l(e);
}

void ControlService::subscribe(std::function<void(const control::Event&)> listener) {
  std::lock_guard lock(listeners_m_);
  listeners_.push_back(std::move(listener));
}

control::Reply ControlService::handle(const control::Request& request, Role role) {
  using R = control::Request;
  const auto refuse = [&](control::Code code, std::string message) {
    control::Reply r;
    r.set_code(code);
    r.set_message(std::move(message));
    *r.mutable_status() = control_.status();
    return r;
  };
  const Role needed = required_role(request);
  if (needed != Role::Anonymous && role != needed) {
    if (role == Role::Anonymous) return refuse(control::UNAUTHORIZED, "this command needs credentials");
    return refuse(control::FORBIDDEN,
                  fmt::format("this command needs the {} role, not {}", to_string(needed), to_string(role)));
  }
  try {
    switch (request.command_case()) {
      case R::kStatus: return refuse(control::OK, "");
      case R::kConfigure: return control_.configure(request.configure().config_text());
      case R::kStart: return control_.start(request.start().comment());
      case R::kStop: return control_.stop();
      case R::kPause: return control_.pause();
      case R::kResume: return control_.resume();
      case R::kReset: return control_.reset();
      case R::kComment: return control_.comment(request.comment().text());
      case R::kSetThresholds: {
        const auto& s = request.set_thresholds();
        if (!s.has_thresholds()) return refuse(control::BAD_REQUEST, "set_thresholds: thresholds missing");
        return control_.set_thresholds(s.thresholds(), s.comment(), s.shadow(), to_string(role));
      }
      case R::kUseThresholdSet:
        return control_.use_threshold_set(request.use_threshold_set().id(), request.use_threshold_set().shadow());
      case R::kClearShadow: return control_.clear_shadow();
      case R::kGetThresholds: {
        control::Reply r = refuse(control::OK, "");
        *r.mutable_thresholds() = control_.thresholds(request.get_thresholds().all());
        return r;
      }
      case R::kListRuns: {
        const std::uint32_t asked = request.list_runs().limit();
        if (asked > kMaxRunList) {
          return refuse(control::BAD_REQUEST, fmt::format("list_runs.limit: {} is above {}", asked, kMaxRunList));
        }
        control::Reply r = refuse(control::OK, "");
        for (const auto& run : database_.runs(asked == 0 ? kDefaultRunList : asked)) {
          *r.add_runs() = to_proto(run, false);
        }
        return r;
      }
      case R::kShowRun: {
        const std::uint32_t n = request.show_run().number();
        const auto run = database_.run(n);
        if (!run) return refuse(control::NOT_FOUND, fmt::format("run {} is not in the run database", n));
        control::Reply r = refuse(control::OK, "");
        *r.add_runs() = to_proto(*run, true);
        for (const auto& s : database_.spills(n)) *r.add_spills() = to_proto(s);
        return r;
      }
      case R::kAckAlarm: {
        const std::uint64_t id = request.ack_alarm().id();
        if (monitor_ == nullptr) return refuse(control::NOT_FOUND, fmt::format("there is no alarm {}", id));
        const AckOutcome ack = monitor_->acknowledge(id, to_string(role));
        using Result = AckOutcome::Result;
        control::Reply r = refuse(ack.result == Result::NotFound ? control::NOT_FOUND
                                  : ack.result == Result::Failed ? control::INTERNAL
                                                                 : control::OK,
                                  ack.message);
        if (ack.result == Result::Acknowledged || ack.result == Result::AlreadyAcknowledged) {
          *r.add_alarms() = to_proto(ack.alarm);
        }
        return r;
      }
      case R::kListAlarms: {
        control::Reply r = refuse(control::OK, "");
        if (monitor_ == nullptr) return r;
        for (const auto& a : request.list_alarms().all() ? database_.alarms(false, kMaxRunList) : monitor_->alarms()) {
          *r.add_alarms() = to_proto(a);
        }
        return r;
      }
      case R::COMMAND_NOT_SET: break;
    }
    return refuse(control::BAD_REQUEST, "the request names no command");
  } catch (const std::exception& e) {
    return refuse(control::INTERNAL, e.what());
  }
}

}  // namespace na64::daq
