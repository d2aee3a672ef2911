//! The source of `recipes/hello/hello`: a 150-byte static x86-64 Linux ELF that
//! prints a greeting and exits 0.
//!
//! It is written out byte by byte from the annotated assembly below, so the
//! runnable example's binary is reproduced exactly from source on any machine,
//! with no compiler whose version could change its bytes. `cargo xtask hello`
//! regenerates the file; a test checks the checked-in file matches.

/// The message the example image prints.
pub const MESSAGE: &[u8] = b"Hello from an image baked by bake!\n";

const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The program text, with `len` the length of the message.
fn code(len: u32) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend([0xb8, 1, 0, 0, 0]); //          mov  eax, 1         ; write
    c.extend([0xbf, 1, 0, 0, 0]); //          mov  edi, 1         ; stdout
    c.extend([0x48, 0x8d, 0x35, 16, 0, 0, 0]); // lea rsi, [rip+16] ; the message, 16 bytes after this instruction
    c.push(0xba); //                          mov  edx, len
    c.extend(len.to_le_bytes());
    c.extend([0x0f, 0x05]); //                syscall
    c.extend([0xb8, 60, 0, 0, 0]); //         mov  eax, 60        ; exit
    c.extend([0x31, 0xff]); //                xor  edi, edi       ; status 0
    c.extend([0x0f, 0x05]); //                syscall
    c
}

/// The whole executable.
pub fn elf() -> Vec<u8> {
    let code = code(MESSAGE.len() as u32);
    let total = (EHDR + PHDR + code.len() + MESSAGE.len()) as u64;
    let mut f = Vec::new();
    // ELF header
    f.extend(b"\x7fELF"); // magic
    f.extend([2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // 64-bit, little-endian, version 1, System V ABI, padding
    f.extend(2u16.to_le_bytes()); // e_type: executable
    f.extend(0x3eu16.to_le_bytes()); // e_machine: x86-64
    f.extend(1u32.to_le_bytes()); // e_version
    f.extend((BASE + (EHDR + PHDR) as u64).to_le_bytes()); // e_entry: the code follows the headers
    f.extend((EHDR as u64).to_le_bytes()); // e_phoff
    f.extend(0u64.to_le_bytes()); // e_shoff: no sections
    f.extend(0u32.to_le_bytes()); // e_flags
    f.extend((EHDR as u16).to_le_bytes()); // e_ehsize
    f.extend((PHDR as u16).to_le_bytes()); // e_phentsize
    f.extend(1u16.to_le_bytes()); // e_phnum
    f.extend(64u16.to_le_bytes()); // e_shentsize
    f.extend(0u16.to_le_bytes()); // e_shnum
    f.extend(0u16.to_le_bytes()); // e_shstrndx
    // program header: map the whole file read+execute at BASE
    f.extend(1u32.to_le_bytes()); // p_type: PT_LOAD
    f.extend(5u32.to_le_bytes()); // p_flags: R + X
    f.extend(0u64.to_le_bytes()); // p_offset
    f.extend(BASE.to_le_bytes()); // p_vaddr
    f.extend(BASE.to_le_bytes()); // p_paddr
    f.extend(total.to_le_bytes()); // p_filesz
    f.extend(total.to_le_bytes()); // p_memsz
    f.extend(0x1000u64.to_le_bytes()); // p_align
    f.extend(&code);
    f.extend(MESSAGE);
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_in_binary_matches_its_source() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../recipes/hello/hello");
        let on_disk = std::fs::read(path).expect("recipes/hello/hello is missing: run `cargo xtask hello`");
        assert_eq!(
            on_disk,
            super::elf(),
            "recipes/hello/hello differs from xtask/src/hello.rs: run `cargo xtask hello`"
        );
    }

    #[test]
    fn headers_are_consistent() {
        let f = super::elf();
        assert_eq!(&f[..4], b"\x7fELF");
        let entry = u64::from_le_bytes(f[24..32].try_into().unwrap());
        assert_eq!(entry, super::BASE + 120);
        let filesz = u64::from_le_bytes(f[64 + 32..64 + 40].try_into().unwrap());
        assert_eq!(filesz as usize, f.len());
    }
}
