/*
 * boot.S - multiboot entry for `qemu-system-x86_64 -kernel`: from 32-bit
 * protected mode to 64-bit long mode, then kmain().
 *
 * QEMU's multiboot loader starts a kernel in 32-bit protected mode with
 * paging off, and only accepts an ELF32 (or a.out-kludge) image; the whole
 * kernel is linked as ELF64 (kernel.ld) and converted with
 * `objcopy -O elf32-i386`, which keeps the 64-bit code bytes as they are.
 * This file's 32-bit part builds page tables identity-mapping the first
 * 1 GiB with 2 MiB pages, enables PAE and long mode, loads a flat GDT with a
 * 64-bit code segment and jumps to it. That is the same flat, identity-mapped
 * long mode the rrtool SDK guest runs in, so the C code is the same code.
 */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x0 /* no a.out kludge: QEMU loads the ELF program headers */

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .text.start, "ax", @progbits
    .code32
    .globl _start
_start:
    cli
    cld
    /* .bss (page tables, stack, the loop's buffer) zeroed: QEMU's loader
       zero-fills it already, but the tables must not hold stray entries. */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    movl $pdpt, %eax
    orl $0x3, %eax                  /* present, writable */
    movl %eax, pml4
    movl $pd, %eax
    orl $0x3, %eax
    movl %eax, pdpt
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax                 /* present, writable, 2 MiB page */
    movl %eax, pd(,%ecx,8)
    incl %ecx
    cmpl $512, %ecx
    jne 1b

    movl $pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax                 /* CR4.PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx          /* EFER */
    rdmsr
    orl $0x100, %eax                /* EFER.LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax           /* CR0.PG | CR0.PE */
    movl %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $long_mode

    .code64
long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $stack_top, %rsp           /* 16-byte aligned, as the ABI wants at a call */
    xorl %ebp, %ebp
    call kmain
2:  cli
    hlt
    jmp 2b

    .section .rodata
    .align 8
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00CF92000000FFFF        /* 0x10: data */
gdt_end:
gdt_ptr:
    .word gdt_end - gdt - 1
    .long gdt

    .section .bss
    .align 4096
pml4:
    .skip 4096
pdpt:
    .skip 4096
pd:
    .skip 4096
    .align 16
    .skip 65536
stack_top:

    .section .note.GNU-stack, "", @progbits
