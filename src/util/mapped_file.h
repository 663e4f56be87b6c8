// Read-only memory mapping of a whole file. Weights are used in place: never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace herd {

class MappedFile {
 public:
  // Throws herd::Error naming the path and the OS error when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Hint the kernel that [offset, offset+length) will be read soon / is no longer needed.
  void advise_willneed(std::size_t offset, std::size_t length) const;
  void advise_dontneed(std::size_t offset, std::size_t length) const;

 private:
  std::string path_;
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace herd
