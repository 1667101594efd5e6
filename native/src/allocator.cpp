// A caching CPU allocator for large buffers. glibc serves big allocations with mmap and returns them to the
// OS on free, so every op on large activations faults its pages in again (measured: 87 s of system time in a
// 91 s CAT-Seg forward). Large blocks are therefore kept after free and handed out again for requests of a
// similar size (best fit up to twice the size), trimmed to what the workload reuses (trimCache, once per call or step,
// frees blocks that stayed idle since the previous trim), up to a cap on idle cached bytes (DEDOS_CPU_CACHE_MB, default half the
// physical memory) and only while the process stays under 85 % of physical memory: past that, idle blocks are
// freed before a new block is made and instead of being cached.
// Small requests go to malloc, whose heap is kept warm by the mallopt settings in addon.cpp.
// Blocks from 4 MiB up are mapped on 2 MiB boundaries and marked for transparent huge pages (the usual
// "madvise" THP mode maps them only when asked): one fault and one TLB entry per 2 MiB instead of 512. A DEDOS
// inference view spent a third of its CPU time in the kernel's page-fault path before.
#include <sys/mman.h>
#include <unistd.h>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <unordered_map>
#include <mutex>

#include "common.h"

namespace dedos {
namespace {

constexpr size_t kLarge = 1 << 20;        // requests from 1 MiB up are cached
constexpr size_t kPage = 4096;
constexpr size_t kHuge = 2 << 20;         // a transparent huge page
constexpr size_t kHugeFrom = 4 << 20;     // blocks from here on are mapped on a huge-page boundary
// DEDOS_HUGEPAGES=0: no huge-page advice (A/B measurements).
const bool kHugePages = [] {
  const char* e = std::getenv("DEDOS_HUGEPAGES");
  return !(e != nullptr && e[0] == '0');
}();

struct CachingCpuAllocator final : public c10::Allocator {
  mutable std::mutex mu;
  mutable std::multimap<size_t, void*> idle;          // capacity → idle block
  mutable std::unordered_map<void*, size_t> capacity_;  // every large block (in use or idle) → capacity
  mutable size_t idleBytes = 0;
  mutable size_t totalBytes = 0;  // capacity of every large block, in use or idle
  mutable uint64_t hits = 0, misses = 0;  // large requests served from the cache / by a new block
  mutable uint64_t newBytes = 0;          // capacity of all blocks ever made (fresh pages to fault in and clear)
  mutable size_t peakInUse = 0;           // most large-block bytes in use at once (since resetPeak)
  // Trim epochs: each idle block remembers the epoch it was released in; Trim() frees the blocks that stayed idle
  // through a whole epoch (a call, a training step), so the cache holds what the workload reuses, not every
  // size it ever made.
  mutable std::unordered_map<void*, uint64_t> idleSince;
  mutable uint64_t epoch = 0;
  size_t cap;

  size_t ramBudget;  // resident bytes above which idle blocks are freed rather than kept

  CachingCpuAllocator() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const double ram = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0;
    ramBudget = ram > 0 ? static_cast<size_t>(0.85 * ram) : SIZE_MAX;
    // Default: half the machine. A training step frees and re-allocates all its activations (10 GB for ViT-B
    // DEDOS); with a 4 GB cap it mapped 20 GB of fresh pages per step and spent a quarter of its time clearing
    // them. The memory guard (above and in allocate) keeps a large cache from causing an out-of-memory kill.
    const char* env = std::getenv("DEDOS_CPU_CACHE_MB");
    cap = env ? static_cast<size_t>(std::atoll(env)) << 20 : ram > 0 ? static_cast<size_t>(0.5 * ram) : size_t{4096} << 20;
  }

  // This process's resident set (from /proc/self/statm; a few microseconds, read by MakeRoom).
  static size_t ResidentBytes() {
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return 0;
    long size = 0, resident = 0;
    const int got = std::fscanf(f, "%ld %ld", &size, &resident);
    std::fclose(f);
    return got == 2 && resident > 0 ? static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
  }

  static void* Raw(size_t bytes) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, bytes) != 0 || p == nullptr) throw std::bad_alloc();
    return p;
  }

  // `capacity` bytes (a multiple of kPage) at a kHuge boundary, advised for huge pages. The kernel backs each whole
  // 2 MiB span with a huge page and the partial last span with small pages: rounding blocks up to 2 MiB instead
  // left up to 2 MiB of zeroed slack resident per block (about 200 MB over the SD-2 UNet's weights).
  static void* MapHuge(size_t capacity) {
    const size_t span = capacity + kHuge;
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHuge - 1) / kHuge * kHuge;
    if (aligned > start) munmap(raw, aligned - start);
    const size_t tail = start + span - (aligned + capacity);
    if (tail > 0) munmap(reinterpret_cast<void*>(aligned + capacity), tail);
    void* p = reinterpret_cast<void*>(aligned);
    if (kHugePages) madvise(p, capacity, MADV_HUGEPAGE);  // advice only: without THP the pages are simply 4 KiB
    return p;
  }

  static size_t CapacityFor(size_t n) { return (n + kPage - 1) / kPage * kPage; }

  static void FreeBlock(void* p, size_t capacity) {
    if (capacity >= kHugeFrom)
      munmap(p, capacity);
    else
      std::free(p);
  }

  c10::DataPtr allocate(size_t n) const override {
    if (n < kLarge) {
      void* p = n == 0 ? nullptr : Raw(n);
      return {p, p, &SmallDelete, c10::Device(c10::DeviceType::CPU)};
    }
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> g(mu);
      // Best fit up to twice the size. An idle block's pages are resident already: serving a smaller request from it
      // costs nothing, a new block costs fresh pages. With 25 % the SD-2 UNet's forward left 372 MB idle for a
      // transient peak of 114 MB (per-call conv weight reorders of 20–56 MB, each its own size); with 2× 238 MB.
      auto it = idle.lower_bound(n);
      if (it != idle.end() && it->first <= std::max(2 * n, CapacityFor(n))) {
        p = it->second;
        idleBytes -= it->first;
        idle.erase(it);
        idleSince.erase(p);
        hits++;
        peakInUse = std::max(peakInUse, totalBytes - idleBytes);
      }
    }
    if (p == nullptr) {
      size_t capacity = CapacityFor(n);
      {
        // Near the machine's memory, idle blocks (of other sizes) make room before new pages are touched.
        std::lock_guard<std::mutex> g(mu);
        if (!idle.empty()) MakeRoom(capacity);
      }
      p = capacity >= kHugeFrom ? MapHuge(capacity) : Raw(capacity);
      std::lock_guard<std::mutex> g(mu);
      capacity_[p] = capacity;
      totalBytes += capacity;
      newBytes += capacity;
      misses++;
      peakInUse = std::max(peakInUse, totalBytes - idleBytes);
    }
    // data == context, as raw_allocate()/raw_deallocate() require.
    return {p, p, &LargeDelete, c10::Device(c10::DeviceType::CPU)};
  }

  static void SmallDelete(void* p) { std::free(p); }
  static void LargeDelete(void* p);
  static void AnyDelete(void* p);

  c10::DeleterFnPtr raw_deleter() const override { return &AnyDelete; }

  /** Whether `p` is a large block (then it goes back to the cache). */
  bool IsLarge(void* p) {
    std::lock_guard<std::mutex> g(mu);
    return capacity_.count(p) != 0;
  }

  // Forgets a large block (not idle, or already taken out of `idle`) and frees it. Caller holds mu.
  void Unmap(void* p, size_t capacity) const {
    totalBytes -= capacity;
    capacity_.erase(p);
    FreeBlock(p, capacity);
  }

  void DropBiggestIdle() const {
    auto last = std::prev(idle.end());
    idleBytes -= last->first;
    idleSince.erase(last->second);
    Unmap(last->second, last->first);
    idle.erase(last);
  }

  // Drops the biggest idle blocks until `incoming` more bytes fit under the RAM budget (or none are idle);
  // returns the resident bytes estimated after. Caller holds mu.
  size_t MakeRoom(size_t incoming) const {
    size_t rss = ResidentBytes();
    while (rss + incoming > ramBudget && !idle.empty()) {
      rss -= std::min(rss, std::prev(idle.end())->first);
      DropBiggestIdle();
    }
    return rss;
  }

  void Release(void* base) {
    std::lock_guard<std::mutex> g(mu);
    size_t capacity = capacity_.at(base);
    // Over the cap: drop the biggest idle blocks first (they are the least likely to fit the next request).
    while (idleBytes + capacity > cap && !idle.empty()) DropBiggestIdle();
    // Near the machine's memory: idle blocks are given back before anything else, so the cache never turns a
    // run that fits into an out-of-memory kill (the ViT-L training step peaks at 21 GB of 24 without it).
    if (MakeRoom(0) > ramBudget || capacity > cap) {
      Unmap(base, capacity);
      return;
    }
    idle.emplace(capacity, base);
    idleSince[base] = epoch;
    idleBytes += capacity;
  }

  void EmptyCache() {
    std::lock_guard<std::mutex> g(mu);
    for (auto& [size, p] : idle) Unmap(p, size);
    idle.clear();
    idleSince.clear();
    idleBytes = 0;
  }

  // Frees the idle blocks nothing took since the previous Trim, starts a new epoch; returns the bytes freed.
  size_t Trim() {
    std::lock_guard<std::mutex> g(mu);
    size_t freed = 0;
    for (auto it = idle.begin(); it != idle.end();) {
      if (idleSince[it->second] < epoch) {
        freed += it->first;
        idleBytes -= it->first;
        idleSince.erase(it->second);
        Unmap(it->second, it->first);
        it = idle.erase(it);
      } else {
        ++it;
      }
    }
    epoch++;
    return freed;
  }
};

CachingCpuAllocator* g_alloc = nullptr;
void CachingCpuAllocator::LargeDelete(void* p) { g_alloc->Release(p); }
void CachingCpuAllocator::AnyDelete(void* p) {
  if (p == nullptr) return;
  if (g_alloc->IsLarge(p)) g_alloc->Release(p);
  else std::free(p);
}

}  // namespace

void InstallCpuAllocator(Napi::Env env, Napi::Object exports) {
  if (g_alloc == nullptr) {
    g_alloc = new CachingCpuAllocator();  // lives for the process: tensors may be freed at exit
    c10::SetCPUAllocator(g_alloc, /*priority=*/100);
  }
  DEDOS_OP("emptyCache", {
    g_alloc->EmptyCache();
    return env.Undefined();
  });
  DEDOS_OP("trimCache", {
    // Frees the idle blocks no request took since the previous trimCache; returns the bytes freed.
    return Napi::Number::New(env, static_cast<double>(g_alloc->Trim()));
  });
  // {idleBytes, largeBytes, hits, misses, newBytes}: the cache's idle bytes, the capacity of all large blocks
  // (in use or idle), how many large requests were served from the cache or by a new block, and the capacity of
  // all new blocks so far.
  DEDOS_OP("allocatorStats", {
    std::lock_guard<std::mutex> g(g_alloc->mu);
    Napi::Object o = Napi::Object::New(env);
    o.Set("idleBytes", static_cast<double>(g_alloc->idleBytes));
    o.Set("largeBytes", static_cast<double>(g_alloc->totalBytes));
    o.Set("hits", static_cast<double>(g_alloc->hits));
    o.Set("misses", static_cast<double>(g_alloc->misses));
    o.Set("newBytes", static_cast<double>(g_alloc->newBytes));
    o.Set("peakInUseBytes", static_cast<double>(g_alloc->peakInUse));
    g_alloc->peakInUse = g_alloc->totalBytes - g_alloc->idleBytes;  // each reading starts a new peak
    return o;
  });
}

}  // namespace dedos
