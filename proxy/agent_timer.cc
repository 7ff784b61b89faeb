#include "proxy/agent_timer.h"

#include <memory>

#include <asio/steady_timer.hpp>

namespace portcullis::proxy {

void AgentTimer::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  auto timer = std::make_shared<asio::steady_timer>(io_, delay);
  timer->async_wait([timer, fn = std::move(fn)](const std::error_code& ec) {
    if (!ec) fn();
  });
}

}  // namespace portcullis::proxy
