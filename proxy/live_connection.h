#pragma once

namespace portcullis::proxy {

// LiveConnection is how a worker reaches its open connections to close them at the end of a
// drain. Connections link themselves into their worker's list on start and unlink on
// destruction; all of it happens on the worker's thread.
class LiveConnection {
 public:
  virtual ~LiveConnection() = default;
  virtual void close_now() = 0;

 private:
  friend class LiveConnectionList;
  LiveConnection* prev_ = nullptr;
  LiveConnection* next_ = nullptr;
};

// LiveConnectionList is an intrusive list: linking allocates nothing. Worker-local.
class LiveConnectionList {
 public:
  void add(LiveConnection* c) {
    c->prev_ = nullptr;
    c->next_ = head_;
    if (head_) head_->prev_ = c;
    head_ = c;
    ++size_;
  }
  void remove(LiveConnection* c) {
    if (c->prev_) c->prev_->next_ = c->next_;
    else head_ = c->next_;
    if (c->next_) c->next_->prev_ = c->prev_;
    c->prev_ = c->next_ = nullptr;
    --size_;
  }
  size_t size() const { return size_; }
  // close_all closes every connection; each may unlink itself (now or later) while we walk.
  void close_all() {
    for (LiveConnection* c = head_; c != nullptr;) {
      LiveConnection* next = c->next_;
      c->close_now();
      c = next;
    }
  }

 private:
  LiveConnection* head_ = nullptr;
  size_t size_ = 0;
};

}  // namespace portcullis::proxy
