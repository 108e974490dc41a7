/* SPDX-License-Identifier: MIT */
/*
 * The only instructions of the engine that touch memory a caller handed
 * it.  A fault on one of them (fault.c) resumes at the fixup, which
 * returns -EFAULT: the kernel's exception table, in user space.  The fast
 * path is a plain copy, straight through for the two structs of every
 * call (an itimerspec, 32 bytes; a sigevent, 64), else sixteen bytes at a
 * time (the structs copied are a few dozen bytes: a string instruction's
 * start-up would cost more).
 *
 * int pt_uaccess_copy(void *dst, const void *src, size_t n)
 *	0, or -EFAULT (14) when dst or src could not be touched.
 */
	.text
	.globl	pt_uaccess_copy
	.hidden	pt_uaccess_copy
	.type	pt_uaccess_copy, @function
	.p2align 4
pt_uaccess_copy:
	.cfi_startproc
	.globl	pt_uaccess_begin
	.hidden	pt_uaccess_begin
pt_uaccess_begin:
	cmpq	$32, %rdx		/* an itimerspec: straight through */
	jne	4f
	movq	(%rsi), %rax
	movq	8(%rsi), %rcx
	movq	16(%rsi), %r8
	movq	24(%rsi), %r9
	movq	%rax, (%rdi)
	movq	%rcx, 8(%rdi)
	movq	%r8, 16(%rdi)
	movq	%r9, 24(%rdi)
	jmp	3f
4:	cmpq	$64, %rdx		/* a sigevent: straight through */
	jne	5f
	movdqu	(%rsi), %xmm0
	movdqu	16(%rsi), %xmm1
	movdqu	32(%rsi), %xmm2
	movdqu	48(%rsi), %xmm3
	movdqu	%xmm0, (%rdi)
	movdqu	%xmm1, 16(%rdi)
	movdqu	%xmm2, 32(%rdi)
	movdqu	%xmm3, 48(%rdi)
	jmp	3f
5:	cmpq	$16, %rdx
	jb	6f
	movdqu	(%rsi), %xmm0
	movdqu	%xmm0, (%rdi)
	addq	$16, %rsi
	addq	$16, %rdi
	subq	$16, %rdx
	jmp	5b
6:	cmpq	$8, %rdx
	jb	2f
1:	movq	(%rsi), %rax
	movq	%rax, (%rdi)
	addq	$8, %rsi
	addq	$8, %rdi
	subq	$8, %rdx
	cmpq	$8, %rdx
	jae	1b
2:	testq	%rdx, %rdx
	jz	3f
	movb	(%rsi), %al
	movb	%al, (%rdi)
	incq	%rsi
	incq	%rdi
	decq	%rdx
	jmp	2b
3:
	.globl	pt_uaccess_end
	.hidden	pt_uaccess_end
pt_uaccess_end:
	xorl	%eax, %eax
	ret
	.globl	pt_uaccess_fixup
	.hidden	pt_uaccess_fixup
pt_uaccess_fixup:
	movl	$-14, %eax
	ret
	.cfi_endproc
	.size	pt_uaccess_copy, .-pt_uaccess_copy

	.section .note.GNU-stack,"",@progbits
