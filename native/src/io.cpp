// Memory-mapped checkpoint files: tensors view the file's pages directly (copy-on-write, never written back),
// so a multi-gigabyte checkpoint costs only the pages actually read.
//
// The hazard of mapping: a page past the end of a file that shrank after it was mapped (truncated in place,
// rewritten by `cp` or a download tool) raises SIGBUS on access, and that kills the process. Copying every
// tensor instead would give up the point of mapping (a 600 MB checkpoint of which a model uses a part would
// be read whole into anonymous memory), and a SIGBUS handler that patches in zero pages would turn the crash
// into silently wrong weights. So each mapping keeps its file descriptor, and `fromMapped` checks the file's
// size *now* (fstat, a microsecond) before making a tensor that views it: a file that shrank is a JS error
// naming it. The loader (src/torch/io/load.ts) makes checkpoint tensors on first use, right before they are
// read, which leaves only the time between making a tensor and reading it (a copy into a parameter) exposed.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <memory>

#include "common.h"

namespace dedos {

struct Mapping {
  void* base = nullptr;
  size_t size = 0;
  int fd = -1;  // kept open to fstat the mapped file itself (not whatever now has its path)
  std::string path;
  ~Mapping() {
    if (base != nullptr && size > 0) munmap(base, size);
    if (fd >= 0) close(fd);
  }
};
using MappingPtr = std::shared_ptr<Mapping>;

void InitIO(Napi::Env env, Napi::Object exports) {
  DEDOS_OP("mapFile", {
    std::string path = dedos::ArgString(info, 0);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
    auto m = std::make_shared<Mapping>();
    m->fd = fd;  // closed by ~Mapping from here on
    m->path = path;
    struct stat st;
    if (fstat(fd, &st) != 0) throw std::runtime_error("cannot stat '" + path + "': " + std::strerror(errno));
    m->size = static_cast<size_t>(st.st_size);
    if (m->size > 0) {
      m->base = mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (m->base == MAP_FAILED) {
        m->base = nullptr;
        throw std::runtime_error("cannot map '" + path + "': " + std::strerror(errno));
      }
    }
    return Napi::External<MappingPtr>::New(env, new MappingPtr(m), [](Napi::Env, MappingPtr* p) { delete p; });
  });
  // fromMapped(mapping, byteOffset, dtypeCode, shape, strides|null) → tensor viewing the file's bytes.
  DEDOS_OP("fromMapped", {
    MappingPtr m = *info[0].As<Napi::External<MappingPtr>>().Data();
    int64_t off = dedos::ArgInt(info, 1);
    at::ScalarType st = dedos::ArgDType(info, 2);
    std::vector<int64_t> shape = dedos::ArgInts(info, 3);
    auto strides = dedos::ArgOptInts(info, 4);
    if (!strides) {
      strides = std::vector<int64_t>(shape.size());
      int64_t acc = 1;
      for (int64_t k = static_cast<int64_t>(shape.size()) - 1; k >= 0; k--) {
        (*strides)[k] = acc;
        acc *= shape[k];
      }
    }
    int64_t span = 1;  // elements from the first to one past the last
    for (size_t k = 0; k < shape.size(); k++) {
      if (shape[k] == 0) span = 0;
      else if (span > 0) span += (shape[k] - 1) * (*strides)[k];
    }
    size_t isz = c10::elementSize(st);
    if (off < 0 || static_cast<size_t>(off) + span * isz > m->size) {
      throw std::out_of_range("'" + m->path + "': tensor bytes [" + std::to_string(off) + ", " +
                              std::to_string(off + span * isz) + ") lie outside the file (" + std::to_string(m->size) +
                              " bytes; truncated file?)");
    }
    // The file may have shrunk since it was mapped: its pages past the new end would raise SIGBUS.
    struct stat now {};
    if (span > 0 && fstat(m->fd, &now) != 0) now.st_size = 0;
    if (span > 0 && static_cast<size_t>(off) + span * isz > static_cast<size_t>(std::max<off_t>(now.st_size, 0))) {
      throw std::runtime_error("'" + m->path + "' is now " + std::to_string(now.st_size) + " bytes, " +
                               std::to_string(m->size) + " when it was opened: tensor bytes [" + std::to_string(off) +
                               ", " + std::to_string(off + span * isz) +
                               ") are gone (was the file truncated or rewritten while in use?)");
    }
    char* p = static_cast<char*>(m->base) + off;
    auto opts = at::TensorOptions().dtype(st);
    if (reinterpret_cast<uintptr_t>(p) % isz != 0) {
      // Misaligned data (allowed by safetensors): copy into an aligned buffer rather than risk vector loads.
      at::Tensor t = at::empty_strided(shape, *strides, opts);
      std::memcpy(t.data_ptr(), p, span * isz);
      return dedos::Ret(env, t);
    }
    MappingPtr keep = m;
    at::Tensor t = at::from_blob(p, shape, *strides, [keep](void*) mutable { keep.reset(); }, opts);
    return dedos::Ret(env, t);
  });
}

}  // namespace dedos
