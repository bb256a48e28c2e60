/*
 * crt0.S - guest entry point and interrupt entry stub.
 *
 * The host has already set RSP (16-byte aligned top of stack) and zeroed
 * .bss (the ELF loader zero-fills up to memsz), so _start only has to call
 * main() and report its return value.
 */

    .section .text.start, "ax", @progbits

    .globl _start
    .type _start, @function
_start:
    xorl %ebp, %ebp             /* terminate frame-pointer chains for debuggers */
    andq $-16, %rsp             /* already aligned by the host; cheap insurance */
    call main                   /* RSP is 16-aligned at the call, as the ABI wants */
    movl %eax, %edi
    call rr_exit                /* noreturn */
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start

    .text

/*
 * rr_irq_entry - the interrupt vector.
 *
 * The host delivers an interrupt like the CPU would: RSP aligned down to 16,
 * an iretq frame (SS, RSP, RFLAGS, CS, RIP) pushed, IF cleared. The
 * interrupted code may be anywhere, so every general purpose register is
 * saved, not just the caller-saved ones: this is cheap and makes the stub
 * independent of what rr_irq_dispatch clobbers. No FPU/SSE state is saved:
 * guests are built with -mgeneral-regs-only.
 */
    .globl rr_irq_entry
    .type rr_irq_entry, @function
rr_irq_entry:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    /* The ABI requires DF=0 and a 16-byte aligned RSP at a call; the
       interrupted code may have had DF set (iretq restores RFLAGS, so
       clearing it here is invisible to it). RBX is callee-saved, so it
       survives the call and remembers the unaligned RSP. */
    cld
    movq %rsp, %rbx
    andq $-16, %rsp
    call rr_irq_dispatch
    movq %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    iretq
    .size rr_irq_entry, . - rr_irq_entry

/* The SDK's marker: an ELF note (name "rrtool", type 1, one word: the SDK ABI version) in its own PT_NOTE
   segment (guest.ld), which is how rrtool tells an SDK guest from a Linux executable. Program headers
   survive `strip`, so a stripped guest is still recognised. */
    .section .note.rrtool, "a"
    .balign 4
    .long 7         /* namesz: "rrtool" and its NUL */
    .long 4         /* descsz */
    .long 1         /* type: an SDK guest */
    .asciz "rrtool"
    .balign 4
    .long 1         /* SDK ABI version */

/* No executable stack wanted (silences ld's warning). */
    .section .note.GNU-stack, "", @progbits
