/* Multiboot (v1) entry: QEMU -kernel loads this ELF at 1 MiB and jumps to
 * _start in 32-bit protected mode, paging off, EAX=magic, EBX=&multiboot_info. */
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00000003          /* align modules, want memory info */
    .set MB_CHECKSUM, -(MB_MAGIC + MB_FLAGS)

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long MB_CHECKSUM

    .section .bss
    .align 16
stack_bottom:
    .skip 16384
stack_top:

    .section .text
    .global _start
    .type _start, @function
_start:
    cli
    mov $stack_top, %esp
    fninit                             /* x87 is used for atomic 64-bit stores */
    push %ebx                          /* multiboot info */
    push %eax                          /* magic */
    call kmain
1:  cli
    hlt
    jmp 1b

    .section .note.GNU-stack, "", @progbits
